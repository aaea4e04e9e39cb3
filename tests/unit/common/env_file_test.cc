#include "common/env_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace cachefs {
namespace {

class EnvFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cachefs_env_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::string cmd = "rm -rf " + dir_;
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }
  std::string Write(const std::string& text, mode_t mode) {
    std::string path = dir_ + "/cai.env";
    std::ofstream(path) << text;
    EXPECT_EQ(chmod(path.c_str(), mode), 0);
    return path;
  }
  std::string dir_;
};

TEST_F(EnvFileTest, ParsesTheDocumentedSubset) {
  auto path = Write(
      "# CAI settings\n"
      "\n"
      "MODEL_OSS_BUCKET_PATH=conf-ai:/qwen2.5-3b-gocryptfs/\n"
      "export MODEL_OSS_ENDPOINT = oss-cn-beijing-internal.aliyuncs.com \n"
      "MODEL_OSS_ACCESS_KEY_ID=\"LTAI x\"\n"
      "MODEL_OSS_SECRET_ACCESS_KEY='s3cr$et#1'\n"
      "  EMPTY=\n"
      "LITERAL=$HOME\r\n"
      "INNER=a\"b\"c\n",
      0600);
  auto env = ReadEnvFile(path);
  ASSERT_TRUE(env) << env.error().message();
  EXPECT_EQ(env->size(), 7u);
  EXPECT_EQ(env->at("MODEL_OSS_BUCKET_PATH"), "conf-ai:/qwen2.5-3b-gocryptfs/");
  EXPECT_EQ(env->at("MODEL_OSS_ENDPOINT"), "oss-cn-beijing-internal.aliyuncs.com");
  EXPECT_EQ(env->at("MODEL_OSS_ACCESS_KEY_ID"), "LTAI x");
  EXPECT_EQ(env->at("MODEL_OSS_SECRET_ACCESS_KEY"), "s3cr$et#1");
  EXPECT_EQ(env->at("EMPTY"), "");
  EXPECT_EQ(env->at("LITERAL"), "$HOME");
  EXPECT_EQ(env->at("INNER"), "a\"b\"c");
}

TEST_F(EnvFileTest, DuplicateKeyNamesBothLines) {
  auto env = ParseEnvFile("A=1\n# x\nB=2\nA=3\n", "f.env");
  ASSERT_FALSE(env);
  EXPECT_EQ(env.error().code(), Errc::kInvalidArgument);
  EXPECT_EQ(env.error().message(), "f.env:4: duplicate key A (first set on line 1)");
}

TEST_F(EnvFileTest, SyntaxErrorsNameTheLineButNotTheValue) {
  auto no_eq = ParseEnvFile("A=1\nSECRETVALUE\n", "f.env");
  ASSERT_FALSE(no_eq);
  EXPECT_EQ(no_eq.error().message(), "f.env:2: expected KEY=VALUE");
  EXPECT_EQ(no_eq.error().message().find("SECRETVALUE"), std::string::npos);

  auto quote = ParseEnvFile("K=\"topsecret\n", "f.env");
  ASSERT_FALSE(quote);
  EXPECT_EQ(quote.error().message().find("topsecret"), std::string::npos);
  EXPECT_FALSE(ParseEnvFile("1A=x\n", "f.env"));
  EXPECT_FALSE(ParseEnvFile("A-B=x\n", "f.env"));
  EXPECT_FALSE(ParseEnvFile("K='mismatch\"\n", "f.env"));
}

TEST_F(EnvFileTest, RefusesFilesOpenToOthersWithModeInMessage) {
  auto path = Write("A=1\n", 0644);
  auto env = ReadEnvFile(path);
  ASSERT_FALSE(env);
  EXPECT_EQ(env.error().code(), Errc::kPermissionDenied);
  EXPECT_NE(env.error().message().find(path), std::string::npos);
  EXPECT_NE(env.error().message().find("0644"), std::string::npos);
  EXPECT_EQ(env.error().message().find('\n'), std::string::npos);

  // The escape hatch reads it anyway.
  auto insecure = ReadEnvFile(path, /*allow_insecure_permissions=*/true);
  ASSERT_TRUE(insecure);
  EXPECT_EQ(insecure->at("A"), "1");
}

TEST_F(EnvFileTest, PermissionRules) {
  EXPECT_TRUE(ReadEnvFile(Write("A=1\n", 0600)));
  EXPECT_TRUE(ReadEnvFile(Write("A=1\n", 0400)));
  EXPECT_FALSE(ReadEnvFile(Write("A=1\n", 0660)));
  EXPECT_FALSE(ReadEnvFile(Write("A=1\n", 0604)));
  EXPECT_FALSE(ReadEnvFile(Write("A=1\n", 0700)));
  // Group read is fine only for group root (the file above is created with our gid).
  auto group_read = ReadEnvFile(Write("A=1\n", 0640));
  EXPECT_EQ(static_cast<bool>(group_read), getegid() == 0);
}

TEST_F(EnvFileTest, MissingFile) {
  auto env = ReadEnvFile(dir_ + "/nope.env");
  ASSERT_FALSE(env);
  EXPECT_EQ(env.error().code(), Errc::kNotFound);
}

}  // namespace
}  // namespace cachefs
