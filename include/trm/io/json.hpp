#pragma once
// JSON from files (safetensors headers, dataset.json, checkpoint metadata, saved positions) is
// untrusted input. nlohmann::json parses any nesting depth without trouble, but dump() (and so
// every error message that shows a value) recurses once per level: 100k nested arrays in a
// 200 KB file overflow the stack. Every parse of untrusted text goes through
// parse_untrusted_json, which refuses nesting deeper than max_json_depth before nlohmann sees
// the text and turns every nlohmann exception (syntax, a number like 1e400 out of range, ...)
// into the caller's error type with the source named. json_brief describes a value for a
// message in bounded space.
#include <charconv>
#include <cstddef>
#include <cstdio>
#include <limits>
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
// Json: nlohmann::json (keys sorted) or nlohmann::ordered_json (the file's key order, which ARC
// needs: the reference builder's example and task order follow its input's order).
template <class Error, class Json = nlohmann::json>
Json parse_untrusted_json(std::string_view text, const std::string& what, const JsonLimits& limits = {}) {
  using json = Json;
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
  auto on_event = [&](int /*depth*/, typename json::parse_event_t event, json& parsed) {
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
        last_key = parsed.template get<std::string>();
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
  } catch (const typename json::parse_error& e) {
    throw Error(what + ": expected valid JSON, found a parse error: " + bounded_message(e.what()));
  } catch (const typename json::exception& e) {  // e.g. out_of_range: a number like 1e400
    throw Error(what + ": expected valid JSON, found a value it cannot hold: " + bounded_message(e.what()));
  }
  if (!duplicate.empty()) throw Error(what + ": expected unique keys, found a duplicate " + duplicate);
  return value;
}

// A value for an error message: its type and at most 80 characters of it.
template <class Json>
std::string json_brief(const Json& v) {
  std::string d = v.dump();  // its recursion is bounded by parse_untrusted_json's depth limit
  if (d.size() > 80) d = d.substr(0, 77) + "...";
  return std::string(v.type_name()) + " " + d;
}

}  // namespace trm::io

namespace trm::io {

// JSON text as Python's json.dump writes it by default (", " and ": " separators, ensure_ascii,
// floats as repr()), in the value's key order: the files our builders write (dataset.json,
// identifiers.json, ARC's test_puzzles.json) come out byte-identical to the reference builders'.
namespace detail {
inline void python_json_string(std::string& out, const std::string& s) {
  static constexpr char hex[] = "0123456789abcdef";
  auto u4 = [&](unsigned v) {
    out += "\\u";
    for (int k = 3; k >= 0; --k) out += hex[(v >> (4 * k)) & 15];
  };
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
          if (c < 0x20) u4(c);
          else out += char(c);
      }
      continue;
    }
    // UTF-8 (nlohmann keeps strings as UTF-8) -> code point -> \uXXXX (a surrogate pair above U+FFFF).
    const int len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
    unsigned cp = c & (len == 4 ? 0x07u : len == 3 ? 0x0fu : 0x1fu);
    for (int k = 1; k < len && i + std::size_t(k) < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + std::size_t(k)]) & 0x3fu);
    i += std::size_t(len);
    if (cp >= 0x10000) {
      cp -= 0x10000;
      u4(0xd800 + (cp >> 10));
      u4(0xdc00 + (cp & 0x3ff));
    } else {
      u4(cp);
    }
  }
  out += '"';
}

// repr() of a finite double: the shortest round-trip digits, positional for exponents -4..15,
// scientific ("1e+16", "1.5e-05") otherwise.
inline std::string python_float_repr(double v) {
  if (v != v) return "NaN";
  if (v == std::numeric_limits<double>::infinity()) return "Infinity";
  if (v == -std::numeric_limits<double>::infinity()) return "-Infinity";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string sci(buf, r.ptr);  // [-]d[.ddd]e[+-]XX
  const bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  const auto epos = sci.find('e');
  const int exp = std::stoi(sci.substr(epos + 1));
  std::string digits = sci.substr(0, epos);
  if (digits.size() > 1) digits.erase(1, 1);  // drop the '.'
  std::string out;
  if (exp < -4 || exp >= 16) {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char e[16];
    std::snprintf(e, sizeof e, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += e;
  } else if (exp < 0) {
    out = "0." + std::string(std::size_t(-exp - 1), '0') + digits;
  } else if (std::size_t(exp) + 1 >= digits.size()) {
    out = digits + std::string(std::size_t(exp) + 1 - digits.size(), '0') + ".0";
  } else {
    out = digits.substr(0, std::size_t(exp) + 1) + "." + digits.substr(std::size_t(exp) + 1);
  }
  return neg ? "-" + out : out;
}

template <class Json>
void python_json_dump(std::string& out, const Json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::object: {
      out += '{';
      bool first = true;
      for (const auto& item : j.items()) {
        if (!first) out += ", ";
        first = false;
        python_json_string(out, item.key());
        out += ": ";
        python_json_dump(out, item.value());
      }
      out += '}';
      break;
    }
    case nlohmann::json::value_t::array: {
      out += '[';
      for (std::size_t k = 0; k < j.size(); ++k) {
        if (k) out += ", ";
        python_json_dump(out, j[k]);
      }
      out += ']';
      break;
    }
    case nlohmann::json::value_t::string: python_json_string(out, j.template get_ref<const std::string&>()); break;
    case nlohmann::json::value_t::number_float: out += python_float_repr(j.template get<double>()); break;
    case nlohmann::json::value_t::null: out += "null"; break;
    default: out += j.dump(); break;  // booleans and integers: the same text
  }
}
}  // namespace detail

template <class Json>
std::string dump_like_python(const Json& j) {
  std::string out;
  detail::python_json_dump(out, j);
  return out;
}

}  // namespace trm::io
