// A map of at most `capacity` entries that forgets the least recently used one when full:
// for caches of things a server loads on demand from its store (parsed tables, cost models),
// whose number a caller could otherwise grow without bound. Not thread-safe: the owner holds
// its lock around every call.
#ifndef APQ_COMMON_LRU_CACHE_H_
#define APQ_COMMON_LRU_CACHE_H_

#include <cstddef>
#include <iterator>
#include <list>
#include <map>
#include <optional>
#include <utility>

namespace apq {

template <typename Key, typename Value>
class LruCache {
 public:
  // Precondition: capacity >= 1.
  explicit LruCache(size_t capacity) : capacity_(capacity) {}

  // The value of `key`, which becomes the most recently used; nullopt when absent.
  std::optional<Value> Get(const Key& key) {
    auto found = index_.find(key);
    if (found == index_.end()) return std::nullopt;
    entries_.splice(entries_.begin(), entries_, found->second);
    return found->second->second;
  }

  // Sets `key` to `value` as the most recently used, forgetting the least recently used
  // entry when that makes more than `capacity`.
  void Put(const Key& key, Value value) {
    auto found = index_.find(key);
    if (found != index_.end()) {
      found->second->second = std::move(value);
      entries_.splice(entries_.begin(), entries_, found->second);
      return;
    }
    entries_.emplace_front(key, std::move(value));
    index_.emplace(key, entries_.begin());
    if (entries_.size() > capacity_) {
      index_.erase(entries_.back().first);
      entries_.pop_back();
    }
  }

  size_t size() const { return entries_.size(); }
  size_t capacity() const { return capacity_; }

 private:
  using Entries = std::list<std::pair<Key, Value>>;
  size_t capacity_;
  Entries entries_;  // Most recently used first.
  std::map<Key, typename Entries::iterator> index_;
};

}  // namespace apq

#endif  // APQ_COMMON_LRU_CACHE_H_
