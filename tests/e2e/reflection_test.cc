// Server reflection is on: a reflection client (as grpcurl or grpc_cli would)
// lists surge.v1.Surge and fetches the descriptor of surge/v1/surge.proto
// from a real surge-server child.
#include <grpcpp/create_channel.h>

#include "gmock/gmock.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace surge {
namespace {

namespace refl = grpc::reflection::v1alpha;

TEST(ReflectionTest, ListsServicesAndServesDescriptors) {
  testing::TempDir dir;
  auto server = testing::ServerProcess::Start(dir.File("r.db"), dir.path());
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = grpc::CreateChannel(server->address(), grpc::InsecureChannelCredentials());
  auto stub = refl::ServerReflection::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = stub->ServerReflectionInfo(&context);

  refl::ServerReflectionRequest list;
  list.set_list_services("");
  ASSERT_TRUE(stream->Write(list));
  refl::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  std::vector<std::string> services;
  for (const auto& s : response.list_services_response().service()) services.push_back(s.name());
  EXPECT_THAT(services, ::testing::Contains("surge.v1.Surge"));
  EXPECT_THAT(services, ::testing::Contains("grpc.health.v1.Health"));

  refl::ServerReflectionRequest file;
  file.set_file_containing_symbol("surge.v1.Surge");
  ASSERT_TRUE(stream->Write(file));
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_GT(response.file_descriptor_response().file_descriptor_proto_size(), 0);
  stream->WritesDone();
  while (stream->Read(&response)) {
  }
  EXPECT_TRUE(stream->Finish().ok());
}

}  // namespace
}  // namespace surge
