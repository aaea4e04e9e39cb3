#include "common/error.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace cachefs {
namespace {

Result<int> Half(int value) {
  if (value % 2 != 0) {
    return Error(Errc::kInvalidArgument, "odd");
  }
  return value / 2;
}

Result<int> Quarter(int value) {
  CACHEFS_ASSIGN_OR_RETURN(int half, Half(value));
  return Half(half);
}

TEST(ErrorTest, ResultCarriesValueOrError) {
  auto ok = Quarter(8);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(*ok, 2);
  auto bad = Quarter(6);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), Errc::kInvalidArgument);
  EXPECT_EQ(bad.error().message(), "odd");
}

TEST(ErrorTest, ErrnoMapping) {
  EXPECT_EQ(Error(Errc::kCorrupt, "x").ToErrno(), EIO);
  EXPECT_EQ(Error(Errc::kChanged, "x").ToErrno(), EIO);
  EXPECT_EQ(Error(Errc::kNotFound, "x").ToErrno(), ENOENT);
  EXPECT_EQ(Error(Errc::kPermissionDenied, "x").ToErrno(), EACCES);
  Error from_errno = Error::FromErrno(ENOENT, "open /x");
  EXPECT_EQ(from_errno.code(), Errc::kNotFound);
  EXPECT_EQ(from_errno.sys_errno(), ENOENT);
  EXPECT_NE(from_errno.message().find("open /x: "), std::string::npos);
}

TEST(ErrorTest, ContextIsPrepended) {
  Error error(Errc::kIo, "reset by peer");
  EXPECT_EQ(error.WithContext("GET chunk 3").message(), "GET chunk 3: reset by peer");
}

TEST(ErrorTest, StatusOkAndError) {
  Status ok;
  EXPECT_TRUE(ok.ok());
  Status bad = Error(Errc::kTimeout, "late");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), Errc::kTimeout);
}

}  // namespace
}  // namespace cachefs
