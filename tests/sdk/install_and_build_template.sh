#!/usr/bin/env bash
# The SDK as an outside author sees it: install pretext into a temporary
# prefix, build examples/plugin-template against it in a separate build
# directory, run the template's own tests (built with the installed test kit,
# pretext/testing.hpp), and run the installed `pretext` with the template's
# task for a few steps on tiny synthetic data.
#   install_and_build_template.sh BUILD_DIR SOURCE_DIR WRITE_SYNTHETIC_IDX
set -euo pipefail
build=$1 source=$2 write_idx=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/pretext-sdk-test.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "== install into $work/prefix"
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
for f in bin/pretext include/pretext/sdk.hpp include/pretext/image_ops.hpp \
         include/pretext/testing.hpp include/pretext/testing_training.hpp lib/cmake/pretext/pretextPlugin.cmake \
         lib/cmake/pretext/pretextConfig.cmake lib/cmake/pretext/pretextConfigVersion.cmake \
         lib/pretext/plugins/pretext_conv4.so lib/pretext/plugins/pretext_rotation.so; do
  [[ -e "$work/prefix/$f" ]] || { echo "missing after install: $f"; exit 1; }
done
ls "$work"/prefix/lib/libpretext_sdk.so.* > /dev/null

echo "== build the template out of tree"
generator=()
command -v ninja > /dev/null && generator=(-G Ninja)
# ccache serves repeated runs of this test; harmless when absent.
launcher=()
command -v ccache > /dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$source/examples/plugin-template" -B "$work/template-build" "${generator[@]}" "${launcher[@]}" \
      -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$work/prefix" > "$work/configure.log" \
  || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/template-build" > "$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
plugin="$work/template-build/pretext_upside_down.so"
[[ -f "$plugin" ]] || { echo "no $plugin"; exit 1; }
# Only the two PRETEXT_PLUGIN symbols are exported (hidden visibility).
exports=$(nm -D --defined-only "$plugin" | awk '$2 ~ /[TDBR]/ {print $3}' | grep -c pretext_plugin_ || true)
[[ "$exports" == 2 ]] || { echo "expected 2 pretext_plugin_* exports, found $exports"; exit 1; }

echo "== the template's tests, through the installed test kit"
[[ -x "$work/template-build/upside_down_test" ]] || { echo "no upside_down_test built"; cat "$work/build.log"; exit 1; }
ctest --test-dir "$work/template-build" --output-on-failure > "$work/ctest.log" 2>&1 \
  || { cat "$work/ctest.log"; exit 1; }
grep -q "100% tests passed" "$work/ctest.log" || { cat "$work/ctest.log"; exit 1; }

echo "== the installed pretext finds the installed built-ins and the template"
export PRETEXT_PLUGIN_PATH="$work/template-build"
"$work/prefix/bin/pretext" plugins > "$work/plugins.txt"
grep -q "upside_down  $plugin" "$work/plugins.txt" || { cat "$work/plugins.txt"; exit 1; }
grep -q "conv4  $work/prefix/lib/pretext/plugins/pretext_conv4.so" "$work/plugins.txt" \
  || { cat "$work/plugins.txt"; exit 1; }

echo "== pretext check-plugin passes on the template, named and by path"
"$work/prefix/bin/pretext" check-plugin upside_down > "$work/check.log" 2>&1 || { cat "$work/check.log"; exit 1; }
grep -q "passed: 6 checks passed, 0 failed" "$work/check.log" || { cat "$work/check.log"; exit 1; }
"$work/prefix/bin/pretext" check-plugin "$plugin" --set pretext.both_views=false > "$work/check.log" 2>&1 \
  || { cat "$work/check.log"; exit 1; }
grep -q "1 views of 3x32x32 per 3x32x32 image" "$work/check.log" || { cat "$work/check.log"; exit 1; }

echo "== run the template's task for a few steps"
mapfile -t files < <("$write_idx" "$work/data" 160)
"$work/prefix/bin/pretext" run "$source/examples/plugin-template/example.toml" \
  --set "data.path=${files[0]}" --set "data.labels_path=${files[1]}" --set data.test_path= \
  --set data.labelled=40 --set data.validation=40 --set data.pad_to=16 \
  --set threads=1 --set pretext.batch_size=16 --set transfer.epochs=1 \
  --set trainer.autocast=none --set model.width=8 \
  --out "$work/run" > "$work/run.log" 2>&1 || { cat "$work/run.log"; exit 1; }
[[ -f "$work/run/summary.json" ]] || { echo "no summary.json"; cat "$work/run.log"; exit 1; }
grep -Eq "plugin = ['\"]upside_down" "$work/run/config.toml" || { echo "config.toml does not name upside_down"; exit 1; }
grep -q '^pretext,1,loss,' "$work/run/metrics.csv" || { echo "no pretext loss in metrics.csv"; exit 1; }
echo "ok: template built against the installed SDK and trained"
