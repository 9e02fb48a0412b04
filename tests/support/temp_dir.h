// TempDir: a fresh directory under $TMPDIR (or /tmp), removed with its
// contents when the object is destroyed.
#ifndef SURGE_TESTS_SUPPORT_TEMP_DIR_H_
#define SURGE_TESTS_SUPPORT_TEMP_DIR_H_

#include <string>

namespace surge::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace surge::testing

#endif  // SURGE_TESTS_SUPPORT_TEMP_DIR_H_
