#include "clients/output.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <system_error>

namespace apq::client {

void PrintJson(const nlohmann::json& value) { std::cout << value.dump(2) << "\n"; }

bool WriteOutputFile(const std::string& path, const std::string& content) {
  std::error_code status_error;
  const std::filesystem::file_status target = std::filesystem::status(path, status_error);
  if (std::filesystem::exists(target) && !std::filesystem::is_regular_file(target)) {
    // A device, a pipe or a socket (/dev/stdout, /dev/full): written in place, never renamed
    // over, and every error of the write reported.
    std::ofstream stream(path, std::ios::binary);
    stream << content;
    stream.flush();
    const int error = errno;
    stream.close();
    if (!stream.fail()) return true;
    std::fprintf(stderr, "apq: cannot write %s: %s\n", path.c_str(),
                 std::strerror(error != 0 ? error : EIO));
    return false;
  }
  // Beside the target, so that the rename stays on one file system; the process id keeps two
  // commands writing the same target apart.
  const std::string temporary = path + ".tmp." + std::to_string(getpid());
  std::ofstream file(temporary, std::ios::binary | std::ios::trunc);
  file << content;
  file.flush();
  file.close();
  if (!file.fail() && std::rename(temporary.c_str(), path.c_str()) == 0) return true;
  const int error = errno;
  std::remove(temporary.c_str());
  std::fprintf(stderr, "apq: cannot write %s: %s\n", path.c_str(), std::strerror(error));
  return false;
}

std::vector<std::string> StringList(const google::protobuf::RepeatedPtrField<std::string>& field) {
  return std::vector<std::string>(field.begin(), field.end());
}

std::string StateName(apq::v1::JobState state) {
  std::string name = apq::v1::JobState_Name(state);
  const std::string prefix = "JOB_STATE_";
  if (name.rfind(prefix, 0) == 0) name = name.substr(prefix.size());
  return name;
}

void PrintCancellationRequested(const std::string& job_id, apq::v1::JobState state) {
  std::cout << job_id << ": cancellation requested (" << StateName(state) << ")\n";
}

std::string ProgressBar(int done, int total, int width) {
  const int filled = std::min(width, done * width / std::max(1, total));
  std::string bar(filled, '#');
  bar.append(width - filled, '.');
  return bar;
}

ProgressLine::ProgressLine(bool as_json) : enabled_(!as_json && isatty(STDERR_FILENO)) {}

void ProgressLine::Show(const std::string& text) {
  if (!enabled_) return;
  // Back to the line's start and clear it, so a shorter text leaves nothing behind.
  std::fprintf(stderr, "\r\033[K%s", text.c_str());
  std::fflush(stderr);
}

void ProgressLine::End() {
  if (enabled_) std::fprintf(stderr, "\n");
}

}  // namespace apq::client
