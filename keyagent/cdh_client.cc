#include "keyagent/cdh_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "common/log.h"
#include "keyagent/socket_io.h"

namespace cachefs::keyagent {
namespace {

constexpr size_t kTtrpcHeaderSize = 10;
// ttrpc allows 4 MiB, but the reply lands in the secure heap (256 KiB in all): a password
// resource needs far less.
constexpr size_t kTtrpcMaxMessage = 16 << 10;
constexpr uint8_t kTtrpcRequest = 1;
constexpr uint8_t kTtrpcResponse = 2;
constexpr int kWireVarint = 0;
constexpr int kWire64 = 1;
constexpr int kWireBytes = 2;
constexpr int kWire32 = 5;

void PutVarint(std::vector<uint8_t>* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<uint8_t>(v));
}

void PutBytesField(std::vector<uint8_t>* out, int field, std::span<const uint8_t> bytes) {
  PutVarint(out, static_cast<uint64_t>(field) << 3 | kWireBytes);
  PutVarint(out, bytes.size());
  out->insert(out->end(), bytes.begin(), bytes.end());
}

std::span<const uint8_t> Bytes(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

// A protobuf field: varints in `number`, length-delimited contents in `bytes`.
struct Field {
  int number = 0;
  int wire_type = 0;
  uint64_t varint = 0;
  std::span<const uint8_t> bytes;
};

class ProtoReader {
 public:
  explicit ProtoReader(std::span<const uint8_t> data) : data_(data) {}
  // Next field, nullopt at the end; sets error() on malformed input.
  std::optional<Field> Next() {
    if (data_.empty() || bad_) {
      return std::nullopt;
    }
    Field field;
    uint64_t key = 0;
    if (!Varint(&key)) {
      return std::nullopt;
    }
    field.number = static_cast<int>(key >> 3);
    field.wire_type = static_cast<int>(key & 7);
    switch (field.wire_type) {
      case kWireVarint:
        if (!Varint(&field.varint)) {
          return std::nullopt;
        }
        return field;
      case kWire64:
      case kWire32: {
        size_t n = field.wire_type == kWire64 ? 8 : 4;
        if (data_.size() < n) {
          bad_ = true;
          return std::nullopt;
        }
        data_ = data_.subspan(n);
        return field;
      }
      case kWireBytes: {
        uint64_t len = 0;
        if (!Varint(&len) || len > data_.size()) {
          bad_ = true;
          return std::nullopt;
        }
        field.bytes = data_.first(static_cast<size_t>(len));
        data_ = data_.subspan(static_cast<size_t>(len));
        return field;
      }
      default:
        bad_ = true;
        return std::nullopt;
    }
  }
  bool bad() const { return bad_; }

 private:
  bool Varint(uint64_t* out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (data_.empty()) {
        break;
      }
      uint8_t b = data_[0];
      data_ = data_.subspan(1);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        *out = v;
        return true;
      }
    }
    bad_ = true;
    return false;
  }

  std::span<const uint8_t> data_;
  bool bad_ = false;
};

Error CdhStatusError(uint64_t code, const std::string& message) {
  std::string text =
      "Confidential Data Hub: " + OneLine(message) + " (status " + std::to_string(code) + ")";
  // The CDH wraps Trustee's errors in text; its gRPC codes are mostly INTERNAL.
  auto has = [&](const char* needle) { return message.find(needle) != std::string::npos; };
  if (code == 5 || has("404") || has("not found") || has("NotFound")) {
    return Error(Errc::kNotFound, text);
  }
  if (code == 7 || code == 16 || has("401") || has("403") || has("denied") || has("PolicyDeny")) {
    return Error(Errc::kPermissionDenied, text);
  }
  return Error(Errc::kUnavailable, text);
}

const std::string kCdhPeer = "Confidential Data Hub";

}  // namespace

std::vector<uint8_t> EncodeTtrpcRequest(uint32_t stream_id, std::string_view service,
                                        std::string_view method, std::span<const uint8_t> payload,
                                        int64_t timeout_nano) {
  std::vector<uint8_t> body;
  PutBytesField(&body, 1, Bytes(service));
  PutBytesField(&body, 2, Bytes(method));
  PutBytesField(&body, 3, payload);
  if (timeout_nano > 0) {
    PutVarint(&body, 4 << 3 | kWireVarint);
    PutVarint(&body, static_cast<uint64_t>(timeout_nano));
  }
  std::vector<uint8_t> frame;
  uint32_t length = static_cast<uint32_t>(body.size());
  for (int shift = 24; shift >= 0; shift -= 8) {
    frame.push_back(static_cast<uint8_t>(length >> shift));
  }
  for (int shift = 24; shift >= 0; shift -= 8) {
    frame.push_back(static_cast<uint8_t>(stream_id >> shift));
  }
  frame.push_back(kTtrpcRequest);
  frame.push_back(0);  // flags
  frame.insert(frame.end(), body.begin(), body.end());
  return frame;
}

Result<SecretBytes> DecodeGetResourceResponse(std::span<const uint8_t> response) {
  ProtoReader reader(response);
  std::optional<std::span<const uint8_t>> payload;
  uint64_t status_code = 0;
  std::string status_message;
  while (auto field = reader.Next()) {
    if (field->number == 1 && field->wire_type == kWireBytes) {
      ProtoReader status(field->bytes);
      while (auto s = status.Next()) {
        if (s->number == 1 && s->wire_type == kWireVarint) {
          status_code = s->varint;
        } else if (s->number == 2 && s->wire_type == kWireBytes) {
          status_message.assign(s->bytes.begin(), s->bytes.end());
        }
      }
    } else if (field->number == 2 && field->wire_type == kWireBytes) {
      payload = field->bytes;
    }
  }
  if (reader.bad()) {
    return Error(Errc::kCorrupt, "Confidential Data Hub sent a malformed ttrpc response");
  }
  if (status_code != 0) {
    return CdhStatusError(status_code, status_message);
  }
  if (!payload) {
    return Error(Errc::kCorrupt, "Confidential Data Hub response has no payload");
  }
  ProtoReader inner(*payload);
  while (auto field = inner.Next()) {
    if (field->number == 1 && field->wire_type == kWireBytes) {
      return SecretBytes::CopyOf(field->bytes);
    }
  }
  if (inner.bad()) {
    return Error(Errc::kCorrupt, "Confidential Data Hub sent a malformed GetResourceResponse");
  }
  return Error(Errc::kNotFound, "Confidential Data Hub returned an empty resource");
}

Result<SecretBytes> CdhGetResource(const std::string& socket_spec, const ResourceUri& resource,
                                   std::chrono::milliseconds timeout) {
  std::string path = socket_spec;
  if (path.starts_with("unix://")) {
    path = path.substr(7);
  }
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return Error(Errc::kInvalidArgument, "--cdh-socket: bad Unix socket path \"" + path + "\"");
  }
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    return Error::FromErrno(errno, "socket");
  }
  timeval tv{.tv_sec = static_cast<time_t>(timeout.count() / 1000),
             .tv_usec = static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  // sockaddr_un is the AF_UNIX member of the sockaddr family; connect() takes the generic type.
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Error(Errc::kUnavailable,
                 "cannot reach the Confidential Data Hub at " + path + ": " + std::strerror(errno));
  }
  std::string uri = resource.KbsUri();
  std::vector<uint8_t> request;
  PutBytesField(&request, 1, Bytes(uri));
  constexpr uint32_t kStreamId = 1;  // client streams are odd
  std::vector<uint8_t> frame =
      EncodeTtrpcRequest(kStreamId, "api.GetResourceService", "GetResource", request,
                         std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count());
  CACHEFS_RETURN_IF_ERROR(SendAll(fd.get(), frame, kCdhPeer));

  uint8_t header[kTtrpcHeaderSize];
  CACHEFS_RETURN_IF_ERROR(RecvAll(fd.get(), header, kCdhPeer));
  uint32_t length =
      static_cast<uint32_t>(header[0]) << 24 | header[1] << 16 | header[2] << 8 | header[3];
  uint32_t stream =
      static_cast<uint32_t>(header[4]) << 24 | header[5] << 16 | header[6] << 8 | header[7];
  if (length > kTtrpcMaxMessage) {
    return Error(Errc::kCorrupt, "Confidential Data Hub reply larger than 16 KiB: not a key");
  }
  if (header[8] != kTtrpcResponse || stream != kStreamId) {
    return Error(Errc::kCorrupt, "Confidential Data Hub sent an unexpected ttrpc frame (is " +
                                     path + " a ttrpc CDH socket?)");
  }
  // The response carries the resource in clear: receive it into secure memory.
  SecretBytes body(length);
  CACHEFS_RETURN_IF_ERROR(RecvAll(fd.get(), body.span(), kCdhPeer));
  auto secret = DecodeGetResourceResponse(body.span());
  if (secret) {
    CACHEFS_LOG(kInfo, "keyagent").Kv("resource", resource.Display()).Kv("cdh", path)
        << "Confidential Data Hub released the resource";
  }
  return secret;
}

}  // namespace cachefs::keyagent
