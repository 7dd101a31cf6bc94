// TempDir inside the LibTorch test binary. libtorch.so (the PyPI wheel) exports its own copy of
// the std::filesystem functions, and std::filesystem::remove_all crashes in a binary linking it;
// TempDir removes its folder with nftw, unlink and rmdir instead. Nothing here uses
// std::filesystem: existence is checked with lstat.
#include <sys/stat.h>

#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "tests/support/support.h"

namespace {

bool exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

TEST(TempDirTorch, NestedFoldersAndFilesAreGoneAfterDestruction) {
  std::string path;
  {
    audit::testing::TempDir dir("torch_support_test");
    path = dir.path();
    ASSERT_TRUE(exists(path));
    for (const std::string sub : {"/a", "/a/b", "/a/b/c", "/d"})
      ASSERT_EQ(mkdir((path + sub).c_str(), 0755), 0) << path + sub;
    audit::testing::write_file(dir.file("top.txt"), "top");
    audit::testing::write_file(dir.file("a/b/c/deep.txt"), "deep");
    audit::testing::write_file(dir.file("d/e.txt"), "e");
    torch::save(torch::arange(4), dir.file("a/b/t.pt"));  // a file LibTorch wrote
    ASSERT_TRUE(exists(dir.file("a/b/t.pt")));
    EXPECT_EQ(audit::testing::read_file(dir.file("a/b/c/deep.txt")), "deep");
  }
  EXPECT_FALSE(exists(path)) << path << " is still there";
}

}  // namespace
