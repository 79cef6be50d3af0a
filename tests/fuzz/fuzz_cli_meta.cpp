// libFuzzer harness: the command line's reading of checkpoint metadata (apps/trm/entry.hpp):
// read_checkpoint_info (the safetensors file, then parse_meta of "trm.cli.model", "trm.cli.train"
// and "trm.fit.state", ModelSpec::from_json with every field type- and range-checked), then what
// `solve`, `eval`, `plot` and `train --resume` do with an accepted configuration: describe(),
// the step and weights of the saved state, ExpectedSpec::check against flags, and
// apply_saved_flags (the saved training flags, "trm.cli.train", taken over on --resume: with no
// flag given, and with the flags the saved state depends on given again).
#include <cstddef>
#include <cstdint>
#include <set>
#include <span>
#include <string>

#include "entry.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = trm_fuzz::scratch() / "checkpoint.safetensors";
  trm_fuzz::write_file(path, std::span<const std::uint8_t>(data, size));
  trm_fuzz::expect_trm_errors<trmcli::CliError>([&] {
    const trmcli::CheckpointInfo info = trmcli::read_checkpoint_info(path);
    const trmcli::ModelSpec& s = info.spec;
    TRM_FUZZ_CHECK(s.side() > 0);  // from_json accepts only the compiled sizes
    (void)s.describe();
    (void)trmcli::step_of(info);
    (void)trmcli::weights_of(info);
    (void)s.to_json().dump();
    // The checkpoint's own values pass the flag check, another hidden size does not.
    trmcli::ExpectedSpec same{.size = s.size, .mixer = s.mixer, .hidden = s.hidden, .layers = s.layers,
                              .prefix = s.prefix, .n = s.n, .T = s.T, .nsup = s.nsup};
    same.check(s, path.string());
    bool refused = false;
    try {
      trmcli::ExpectedSpec{.hidden = s.hidden + 1}.check(s, path.string());
    } catch (const trmcli::CliError&) {
      refused = true;
    }
    TRM_FUZZ_CHECK(refused);

    trmcli::TrainArgs resumed;
    resumed.model = s;
    trmcli::apply_saved_flags(resumed, info.train, {}, path.string());
    trmcli::TrainArgs given = resumed;  // the same values given again on the command line
    trmcli::apply_saved_flags(given, info.train, {"batch", "optimizer", "seed", "ema", "data"}, path.string());
  });
  return 0;
}
