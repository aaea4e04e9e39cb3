#include "tools/cachefsctl/command.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>

#include "tools/cachefs/control_socket.h"

namespace cachefs::ctl {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

nlohmann::ordered_json FieldValue(const Message& message, const FieldDescriptor* field, int index);

nlohmann::ordered_json MessageToJson(const Message& message) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  const google::protobuf::Descriptor* descriptor = message.GetDescriptor();
  const Reflection* reflection = message.GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    if (field->is_repeated()) {
      nlohmann::ordered_json list = nlohmann::ordered_json::array();
      for (int j = 0; j < reflection->FieldSize(message, field); ++j) {
        list.push_back(FieldValue(message, field, j));
      }
      out[field->name()] = std::move(list);
    } else {
      out[field->name()] = FieldValue(message, field, -1);
    }
  }
  return out;
}

// One value of `field`: element `index` of a repeated field, or the singular value for -1.
nlohmann::ordered_json FieldValue(const Message& message, const FieldDescriptor* field, int index) {
  const Reflection* r = message.GetReflection();
  bool repeated = index >= 0;
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return repeated ? r->GetRepeatedInt32(message, field, index) : r->GetInt32(message, field);
    case FieldDescriptor::CPPTYPE_INT64:
      return repeated ? r->GetRepeatedInt64(message, field, index) : r->GetInt64(message, field);
    case FieldDescriptor::CPPTYPE_UINT32:
      return repeated ? r->GetRepeatedUInt32(message, field, index) : r->GetUInt32(message, field);
    case FieldDescriptor::CPPTYPE_UINT64:
      return repeated ? r->GetRepeatedUInt64(message, field, index) : r->GetUInt64(message, field);
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return repeated ? r->GetRepeatedDouble(message, field, index) : r->GetDouble(message, field);
    case FieldDescriptor::CPPTYPE_FLOAT:
      return repeated ? r->GetRepeatedFloat(message, field, index) : r->GetFloat(message, field);
    case FieldDescriptor::CPPTYPE_BOOL:
      return repeated ? r->GetRepeatedBool(message, field, index) : r->GetBool(message, field);
    case FieldDescriptor::CPPTYPE_STRING:
      return repeated ? r->GetRepeatedString(message, field, index) : r->GetString(message, field);
    case FieldDescriptor::CPPTYPE_ENUM: {
      const auto* value =
          repeated ? r->GetRepeatedEnum(message, field, index) : r->GetEnum(message, field);
      // STATE_READY -> "ready": drop the prefix every value of the enum shares.
      std::string name = value->name();
      std::string prefix = value->type()->value(0)->name();
      prefix = prefix.substr(0, prefix.find('_') + 1);
      if (name.starts_with(prefix)) {
        name = name.substr(prefix.size());
      }
      for (char& c : name) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
      return name;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return MessageToJson(repeated ? r->GetRepeatedMessage(message, field, index)
                                    : r->GetMessage(message, field));
  }
  return nullptr;
}

}  // namespace

std::string GlobalOptions::SocketPath() const {
  if (!socket.empty()) {
    return socket;
  }
  std::string path = mountpoint;
  while (path.size() > 1 && path.back() == '/') {
    path.pop_back();
  }
  return tools::DefaultControlSocketPath(path);
}

ControlClient::ControlClient(const GlobalOptions& options)
    : socket_path_(options.SocketPath()), timeout_s_(options.timeout_s) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(tools::kMaxControlReplyBytes));
  stub_ = control::Control::NewStub(
      grpc::CreateCustomChannel("unix:" + socket_path_, grpc::InsecureChannelCredentials(), args));
}

bool ControlClient::Check() const {
  sockaddr_un address{};
  if (socket_path_.size() >= sizeof(address.sun_path)) {
    std::fprintf(stderr, "cachefsctl: socket path %s is too long\n", socket_path_.c_str());
    return false;
  }
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, socket_path_.c_str(), socket_path_.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  // sockaddr_un is the sockaddr the kernel expects for AF_UNIX.
  int rc = fd < 0 ? -1 : connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  int error = errno;
  if (fd >= 0) {
    close(fd);
  }
  if (rc == 0) {
    return true;
  }
  const char* why = error == ENOENT         ? "no daemon serves this mount point (no socket)"
                    : error == EACCES       ? "permission denied (run as the daemon's user or root)"
                    : error == ECONNREFUSED ? "nobody listens (the daemon exited)"
                                            : std::strerror(error);
  std::fprintf(stderr, "cachefsctl: %s: %s\n", socket_path_.c_str(), why);
  return false;
}

std::unique_ptr<grpc::ClientContext> ControlClient::Context() const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(timeout_s_ * 1000)));
  return context;
}

int ReportRpcError(const std::string& what, const grpc::Status& status) {
  std::fprintf(stderr, "cachefsctl: %s: %s\n", what.c_str(), status.error_message().c_str());
  return status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                 status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED
             ? kExitUnreachable
             : kExitFailure;
}

std::string FormatBytes(uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  if (unit == 0) {
    std::snprintf(text, sizeof(text), "%llu B", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(text, sizeof(text), "%.1f %s", value, kUnits[unit]);
  }
  return text;
}

std::string FormatDuration(double seconds) {
  auto total = static_cast<long long>(seconds + 0.5);
  char text[32];
  if (total >= 3600) {
    std::snprintf(text, sizeof(text), "%lldh%02lldm", total / 3600, total / 60 % 60);
  } else if (total >= 60) {
    std::snprintf(text, sizeof(text), "%lldm%02llds", total / 60, total % 60);
  } else {
    std::snprintf(text, sizeof(text), "%llds", total);
  }
  return text;
}

std::string FormatUnixTime(int64_t unix_seconds) {
  if (unix_seconds == 0) {
    return "-";
  }
  time_t t = static_cast<time_t>(unix_seconds);
  tm utc{};
  gmtime_r(&t, &utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

std::string ToJson(const google::protobuf::Message& message) {
  return MessageToJson(message).dump(2);
}

}  // namespace cachefs::ctl
