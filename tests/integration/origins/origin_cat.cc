// origin_cat: opens an origin the way `cachefs mount` does (ApplyEnvironment + OpenOrigin) and
// lists it, copies an object to stdout, or prints a manifest. Used by the origin integration
// tests and benchmarks; not installed.
//
//   origin_cat [options] list ORIGIN
//   origin_cat [options] cat ORIGIN KEY [--offset N] [--length N] [--read-size N]
//                                       [--readers N] [--random]
//   origin_cat [options] manifest ORIGIN [--no-etags]
// options: --endpoint URL --region R --path-style --anonymous --access-key-id ID
//          --oss-signature v1|v4 --env-file F --ca-bundle F --cache-dir D --cache-size N
//          --part-size N --memory-budget N --parallel N --stall-timeout S
//          --stats FILE
// Secrets come from the environment or the env-file only.

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/env_file.h"
#include "fetch/manifest.h"
#include "fetch/origin_factory.h"

namespace {

using cachefs::fetch::ObjectInfo;
using cachefs::fetch::Origin;
using cachefs::fetch::OriginStats;

int Fail(const std::string& message) {
  std::fprintf(stderr, "origin_cat: %s\n", message.c_str());
  return 1;
}

const char* TypeName(cachefs::fetch::ObjectType type) {
  switch (type) {
    case cachefs::fetch::ObjectType::kDirectory:
      return "dir";
    case cachefs::fetch::ObjectType::kSymlink:
      return "symlink";
    case cachefs::fetch::ObjectType::kOther:
      return "other";
    case cachefs::fetch::ObjectType::kFile:
      break;
  }
  return "file";
}

void WriteStats(Origin& origin, const std::string& path) {
  OriginStats s;
  origin.CollectStats(s);
  nlohmann::json j = {{"origin_requests", s.origin_requests},
                      {"origin_retries", s.origin_retries},
                      {"origin_bytes", s.origin_bytes},
                      {"errors_not_found", s.errors_not_found},
                      {"errors_denied", s.errors_denied},
                      {"errors_changed", s.errors_changed},
                      {"errors_transport", s.errors_transport},
                      {"errors_timeout", s.errors_timeout},
                      {"errors_server", s.errors_server},
                      {"errors_throttled", s.errors_throttled},
                      {"errors_short_body", s.errors_short_body},
                      {"bytes_from_memory", s.bytes_from_memory},
                      {"bytes_from_disk", s.bytes_from_disk},
                      {"bytes_from_origin", s.bytes_from_origin},
                      {"memory_hits", s.memory_hits},
                      {"disk_hits", s.disk_hits},
                      {"origin_fetches", s.origin_fetches},
                      {"single_flight_waits", s.single_flight_waits},
                      {"memory_used", s.memory_used},
                      {"memory_limit", s.memory_limit},
                      {"disk_used", s.disk_used},
                      {"disk_limit", s.disk_limit},
                      {"disk_enabled", s.disk_enabled},
                      {"disk_corrupt", s.disk_corrupt},
                      {"disk_write_errors", s.disk_write_errors},
                      {"readahead_issued", s.readahead_issued},
                      {"readahead_used", s.readahead_used}};
  std::ofstream(path) << j.dump(1) << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  cachefs::fetch::OriginOptions options;
  std::string env_file;
  std::string stats_path;
  uint64_t offset = 0;
  uint64_t length = UINT64_MAX;
  uint64_t read_size = 1 << 20;
  int readers = 1;
  bool random_order = false;
  bool etags = true;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "origin_cat: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--endpoint") {
      options.endpoint = next();
    } else if (a == "--region") {
      options.region = next();
    } else if (a == "--path-style") {
      options.path_style = true;
    } else if (a == "--anonymous") {
      options.anonymous = true;
    } else if (a == "--access-key-id") {
      options.access_key_id = next();
    } else if (a == "--oss-signature") {
      options.oss_signature = next();
    } else if (a == "--env-file") {
      env_file = next();
    } else if (a == "--ca-bundle") {
      options.ca_bundle = next();
    } else if (a == "--cache-dir") {
      options.cache_dir = next();
    } else if (a == "--cache-size") {
      options.cache_size = std::stoull(next());
    } else if (a == "--part-size") {
      options.part_size = std::stoull(next());
    } else if (a == "--memory-budget") {
      options.memory_budget = std::stoull(next());
    } else if (a == "--parallel") {
      options.max_parallel_fetches = std::stoi(next());
    } else if (a == "--stall-timeout") {
      options.stall_timeout_s = std::stoi(next());
    } else if (a == "--stats") {
      stats_path = next();
    } else if (a == "--offset") {
      offset = std::stoull(next());
    } else if (a == "--length") {
      length = std::stoull(next());
    } else if (a == "--read-size") {
      read_size = std::stoull(next());
    } else if (a == "--readers") {
      readers = std::stoi(next());
    } else if (a == "--random") {
      random_order = true;
    } else if (a == "--no-etags") {
      etags = false;
    } else {
      args.push_back(a);
    }
  }
  if (args.size() < 2) {
    return Fail("usage: origin_cat [options] list|cat|manifest ORIGIN [KEY]");
  }
  options.location = args[1];
  std::map<std::string, std::string> env_values;
  if (!env_file.empty()) {
    auto env = cachefs::ReadEnvFile(env_file);
    if (!env) {
      return Fail(env.error().message());
    }
    env_values = std::move(*env);
  }
  if (auto status = cachefs::fetch::ApplyEnvironment(options, env_values); !status) {
    return Fail(status.error().message());
  }
  auto origin = cachefs::fetch::OpenOrigin(options);
  if (!origin) {
    return Fail(origin.error().message());
  }
  Origin& o = **origin;
  const std::string& command = args[0];
  int rc = 0;
  if (command == "manifest") {
    auto text = cachefs::fetch::BuildManifest(o, etags);
    if (!text) {
      return Fail(text.error().message());
    }
    std::fwrite(text->data(), 1, text->size(), stdout);
  } else if (command == "list") {
    auto list = o.List();
    if (!list) {
      return Fail(list.error().message());
    }
    for (const auto& obj : *list) {
      std::printf("%s\t%llu\t%s\t%s\n", TypeName(obj.type),
                  static_cast<unsigned long long>(obj.size), obj.etag.c_str(), obj.key.c_str());
    }
  } else if (command == "cat") {
    if (args.size() < 3) {
      return Fail("cat needs a KEY");
    }
    auto list = o.List();
    if (!list) {
      return Fail(list.error().message());
    }
    const ObjectInfo* object = nullptr;
    for (const auto& obj : *list) {
      if (obj.key == args[2]) {
        object = &obj;
      }
    }
    if (object == nullptr) {
      return Fail("no object " + args[2]);
    }
    uint64_t end = std::min(object->size, length == UINT64_MAX ? object->size : offset + length);
    // Reads go in read_size pieces, as FUSE would send them, spread over `readers` threads
    // that each take every readers-th piece (so the pieces arrive roughly in order).
    std::vector<uint64_t> pieces;
    for (uint64_t p = offset; p < end; p += read_size) {
      pieces.push_back(p);
    }
    if (random_order) {
      std::shuffle(pieces.begin(), pieces.end(), std::mt19937_64(7));
    }
    if (readers <= 1 && !random_order) {
      // One sequential reader streams through a piece-sized buffer, as a FUSE reader would.
      std::vector<uint8_t> piece(read_size);
      for (uint64_t p : pieces) {
        uint64_t n = std::min(read_size, end - p);
        auto r = o.ReadRange(*object, p, std::span<uint8_t>(piece.data(), n));
        if (!r || *r != n) {
          std::fprintf(stderr, "origin_cat: read at %llu failed: %s\n",
                       static_cast<unsigned long long>(p),
                       r ? "short read" : r.error().message().c_str());
          rc = 1;
          break;
        }
        std::fwrite(piece.data(), 1, n, stdout);
      }
    } else {
      std::vector<uint8_t> out(end - std::min(end, offset));
      std::atomic<size_t> next{0};
      std::atomic<bool> failed{false};
      std::vector<std::thread> threads;
      for (int t = 0; t < readers; ++t) {
        threads.emplace_back([&] {
          while (!failed) {
            size_t i = next.fetch_add(1);
            if (i >= pieces.size()) {
              return;
            }
            uint64_t p = pieces[i];
            uint64_t n = std::min(read_size, end - p);
            auto r = o.ReadRange(*object, p, std::span<uint8_t>(out.data() + (p - offset), n));
            if (!r || *r != n) {
              std::fprintf(stderr, "origin_cat: read at %llu failed: %s\n",
                           static_cast<unsigned long long>(p),
                           r ? "short read" : r.error().message().c_str());
              failed = true;
            }
          }
        });
      }
      for (auto& t : threads) {
        t.join();
      }
      if (failed) {
        rc = 1;
      } else {
        std::fwrite(out.data(), 1, out.size(), stdout);
      }
    }
  } else {
    return Fail("unknown command " + command);
  }
  std::fflush(stdout);
  if (!stats_path.empty()) {
    WriteStats(o, stats_path);
  }
  return rc;
}
