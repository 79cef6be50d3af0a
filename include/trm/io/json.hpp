#pragma once
// JSON from files (safetensors headers, dataset.json, checkpoint metadata, saved positions) is
// untrusted input. nlohmann::json parses any nesting depth without trouble, but dump() (and so
// every error message that shows a value) recurses once per level: 100k nested arrays in a
// 200 KB file overflow the stack. Every parse of untrusted text goes through
// parse_untrusted_json, which refuses nesting deeper than max_json_depth before nlohmann sees
// the text and turns every nlohmann exception (syntax, a number like 1e400 out of range, ...)
// into the caller's error type with the source named. json_brief describes a value for a
// message in bounded space.
#include <cstddef>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace trm::io {

// Deeper than any file of ours (dataset.json: 2; safetensors: 3; checkpoint metadata: 3).
inline constexpr int max_json_depth = 64;

// The deepest nesting of arrays and objects in JSON text, counting stops at stop_at + 1 (strings,
// with their escapes, are skipped; the text need not be valid JSON).
inline int json_nesting_depth(std::string_view text, int stop_at = max_json_depth) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      if (++depth > deepest) deepest = depth;
      if (deepest > stop_at) return deepest;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

// nlohmann's parse errors quote the last token read, which a crafted file can make megabytes
// long: messages keep the first 200 characters.
inline std::string bounded_message(std::string m, std::size_t limit = 200) {
  if (m.size() > limit) m = m.substr(0, limit - 3) + "...";
  return m;
}

// Limits of parse_untrusted_json beyond the syntax.
struct JsonLimits {
  int max_depth = max_json_depth;
  // The longest array accepted. nlohmann holds each element in about 16 bytes plus its value, so
  // a crafted array of zeros takes ~8x its text: a reader whose arrays are short (a safetensors
  // shape) sets this to refuse the array while it is parsed, before the memory is spent.
  std::size_t max_array_length = std::size_t(-1);
  const char* top_level_key = "key";  // what the outermost object's keys are, in messages ("tensor name")
};

// `what` names the source in errors ("<file>: metadata entry 'x'"). Error: an exception type
// constructible from a std::string. Duplicate keys are refused at every level (nlohmann keeps the
// last one silently, so {"seq_len": 81, "seq_len": 900} would read as 900 with no word).
template <class Error>
nlohmann::json parse_untrusted_json(std::string_view text, const std::string& what, const JsonLimits& limits = {}) {
  using nlohmann::json;
  if (const int d = json_nesting_depth(text, limits.max_depth); d > limits.max_depth)
    throw Error(what + ": expected JSON nested at most " + std::to_string(limits.max_depth) +
                " levels deep, found deeper (" + std::to_string(d) + "+ levels)");
  // The parser callback sees every key and value; a stack of the open containers finds repeated
  // keys and counts array elements. Depth is bounded above, so the stack is too.
  struct Scope {
    bool is_array = false;
    std::string name;
    std::set<std::string> keys;
    std::size_t elements = 0;
  };
  std::vector<Scope> scopes;
  std::string last_key, duplicate;
  auto count_element = [&]() {
    if (scopes.empty() || !scopes.back().is_array) return;
    if (++scopes.back().elements > limits.max_array_length)
      throw Error(what + ": expected arrays of at most " + std::to_string(limits.max_array_length) +
                  " elements, found a longer one" +
                  (scopes.back().name.empty() ? std::string() : " in entry '" + bounded_message(scopes.back().name, 80) + "'"));
  };
  auto on_event = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start: scopes.push_back({false, last_key, {}, 0}); break;
      case json::parse_event_t::array_start: scopes.push_back({true, last_key, {}, 0}); break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        scopes.pop_back();
        count_element();
        break;
      case json::parse_event_t::value: count_element(); break;
      case json::parse_event_t::key:
        last_key = parsed.get<std::string>();
        if (!scopes.back().keys.insert(last_key).second && duplicate.empty()) {
          duplicate = scopes.size() == 1 ? std::string(limits.top_level_key) + " '" + bounded_message(last_key, 80) + "'"
                                         : "key '" + bounded_message(last_key, 80) + "' in entry '" +
                                               bounded_message(scopes.back().name, 80) + "'";
        }
        break;
    }
    return true;
  };
  json value;
  try {
    value = json::parse(text.begin(), text.end(), on_event);
  } catch (const json::parse_error& e) {
    throw Error(what + ": expected valid JSON, found a parse error: " + bounded_message(e.what()));
  } catch (const json::exception& e) {  // e.g. out_of_range: a number like 1e400
    throw Error(what + ": expected valid JSON, found a value it cannot hold: " + bounded_message(e.what()));
  }
  if (!duplicate.empty()) throw Error(what + ": expected unique keys, found a duplicate " + duplicate);
  return value;
}

// A value for an error message: its type and at most 80 characters of it.
inline std::string json_brief(const nlohmann::json& v) {
  std::string d = v.dump();  // its recursion is bounded by parse_untrusted_json's depth limit
  if (d.size() > 80) d = d.substr(0, 77) + "...";
  return std::string(v.type_name()) + " " + d;
}

}  // namespace trm::io
