// Sends raw, hand-made requests to a cachefs control socket, as a hostile or broken client
// would, and prints the gRPC status code name the daemon answers with:
//
//   control_probe SOCKET METHOD (malformed | oversized | empty)
//
// METHOD is a full method name such as /cachefs.control.v1.Control/GetStatus.

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>

namespace {

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    default:
      return "OTHER";
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: control_probe SOCKET METHOD malformed|oversized|empty\n");
    return 2;
  }
  std::string kind = argv[3];
  std::string payload;
  if (kind == "malformed") {
    // A length-delimited field (tag 1, wire type 2) claiming far more bytes than follow.
    payload = std::string("\x0a\xff\xff\xff\x0f", 5) + "garbage";
  } else if (kind == "oversized") {
    payload = std::string(1 << 20, 'x');
  } else if (kind != "empty") {
    std::fprintf(stderr, "unknown kind %s\n", kind.c_str());
    return 2;
  }
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(8 << 20);
  auto channel = grpc::CreateCustomChannel(std::string("unix:") + argv[1],
                                           grpc::InsecureChannelCredentials(), args);
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Slice slice(payload);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer reply;
  grpc::Status result;
  bool done = false;
  std::mutex mu;
  std::condition_variable cv;
  stub.UnaryCall(&context, argv[2], grpc::StubOptions(), &request, &reply,
                 [&](grpc::Status status) {
                   std::lock_guard lock(mu);
                   result = status;
                   done = true;
                   cv.notify_all();
                 });
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return done; });
  std::printf("%s %s\n", CodeName(result.error_code()), result.error_message().c_str());
  return 0;
}
