# The command line's bad-input matrix (docs/reliability.md): each case is an input a user can
# plausibly type, with the exact exit status (1 for what flowad refuses, CLI11's codes for malformed
# options: 104 a value that is not a number, 105 one out of range) and a regular expression the message
# must match. The inputs come from flowad_test_write_bad_inputs (write_bad_inputs.cpp). The API's
# matrix is tests/unit/test_bad_input_matrix.cpp; cases already in tests/CMakeLists.txt (an unknown
# command, detector or setting, a missing model file, a malformed --size, pool strides and calibration
# folds out of range, a model fitted on feature maps scoring images) are not repeated.
set(bad ${CMAKE_CURRENT_BINARY_DIR}/cli-bad-inputs)
add_executable(flowad_test_write_bad_inputs cli/write_bad_inputs.cpp)
target_include_directories(flowad_test_write_bad_inputs PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(flowad_test_write_bad_inputs PRIVATE flowad::flowad flowad_warnings ZLIB::ZLIB)
add_test(NAME "cli: bad inputs for the matrix" COMMAND flowad_test_write_bad_inputs ${bad})
set_tests_properties("cli: bad inputs for the matrix" PROPERTIES LABELS cli FIXTURES_SETUP bad_inputs)

set(tiny_fit --size 16 --levels level1 --set groups=2 --set hidden=4 --set blocks=1 --epochs 1 --calibration holdout
             --holdout 0.5)
# bad_input(NAME STATUS REGEX ARGS...): flowad ARGS must exit with STATUS, its output matching REGEX.
function(bad_input name status regex)
  flowad_cli_test("bad input: ${name}" ${status} "${regex}" ${ARGN})
  set_tests_properties("cli: bad input: ${name}" PROPERTIES FIXTURES_REQUIRED bad_inputs)
endfunction()

bad_input("model: not a flowad file" 1 "flowad score: .*foreign\\.flowad: not a flowad model file \\(bad magic number\\)"
          score ${bad}/foreign.flowad ${bad}/gray.png)
bad_input("model: an empty file" 1 "empty\\.flowad: the file is empty \\(not a flowad model file\\)"
          score ${bad}/empty.flowad ${bad}/gray.png)
bad_input("model: a future format version" 1 "future\\.flowad: model format version 2 is not supported by this flowad \\(reads version 1\\)"
          info --model-file ${bad}/future.flowad)
bad_input("model: an MS-Flow file that says it is PatchCore" 1 "other-kind\\.flowad: the model file holds a .patchcore. detector that cannot be rebuilt: the configuration lacks the setting .patch_size."
          score --model-file ${bad}/other-kind.flowad --features ${bad}/features.npy)
bad_input("image: gray, 16-bit, RGBA and 1x1 are scored" 0 "gray\\.png +[-0-9.e+]+ .*gray16\\.png +[-0-9.e+]+ .*rgba\\.png +[-0-9.e+]+ .*1x1\\.png +[-0-9.e+]+ .*[0-4] of 4 images at or above the threshold"
          score ${bad}/model.flowad ${bad}/gray.png ${bad}/gray16.png ${bad}/rgba.png ${bad}/1x1.png)
bad_input("image: a truncated PNG" 1 "cannot decode image .*truncated\\.png.*truncated"
          score ${bad}/model.flowad ${bad}/truncated.png)
bad_input("image: a text file named .png" 1 "text\\.png.*not a PNG, JPEG or BMP file \\(unrecognised signature\\)"
          score ${bad}/model.flowad ${bad}/text.png)
bad_input("image: a FIFO named .png" 1 "fifo\\.png.*not a regular file"
          score ${bad}/model.flowad ${bad}/fifo.png)
bad_input("image: a missing file" 1 "no-such\\.png.*no such file"
          score ${bad}/model.flowad ${bad}/no-such.png)
bad_input("folder: no images in it" 1 "empty.* holds no images"
          score ${bad}/model.flowad ${bad}/empty)
bad_input("folder: fit --data on an empty folder" 1 "MVTec layout: missing training folder .*empty/train/good"
          fit --data ${bad}/empty ${tiny_fit} --out ${bad}/never.flowad)
bad_input("folder: fit --data on a missing folder" 1 "MVTec category folder .*nowhere.* does not exist"
          fit --data ${bad}/nowhere ${tiny_fit} --out ${bad}/never.flowad)
bad_input("folder: score --data with a mask missing" 1 "has no mask"
          score ${bad}/model.flowad --data ${bad}/no-mask)
bad_input("threshold: not a number" 104 "Could not convert: --threshold = abc"
          score ${bad}/model.flowad ${bad}/gray.png --threshold abc)
bad_input("threshold: NaN" 1 "--threshold must be a finite number, got nan"
          score ${bad}/model.flowad ${bad}/gray.png --threshold nan)
bad_input("threshold: infinite" 1 "--threshold must be a finite number, got inf"
          score ${bad}/model.flowad ${bad}/gray.png --threshold inf)
bad_input("option: a target false-positive rate of 2" 1 "target_fpr must be in \\(0, 1\\), got 2"
          fit --data ${bad}/category ${tiny_fit} --target-fpr 2 --out ${bad}/never.flowad)
bad_input("option: a holdout of 1.5" 1 "holdout must be in \\[0, 1\\), got 1\\.5"
          fit --data ${bad}/category --size 16 --calibration holdout --holdout 1.5 --out ${bad}/never.flowad)
bad_input("option: zero epochs" 105 "--epochs: Value 0 not in range 1 to 100000"
          fit --data ${bad}/category --epochs 0 --out ${bad}/never.flowad)
bad_input("option: a size of 0x16" 1 "--size expects HxW .* got '0x16'"
          fit --data ${bad}/category --size 0x16 --out ${bad}/never.flowad)
bad_input("option: a shorter side of 7" 1 "shorter_side must be in \\[8, 16384\\], got 7"
          fit --data ${bad}/category --shorter-side 7 --out ${bad}/never.flowad)
bad_input("option: an even neighbourhood" 1 "neighbourhood must be odd and in \\[1, 63\\], got 2"
          fit --data ${bad}/category --neighbourhood 2 --out ${bad}/never.flowad)
bad_input("option: a setting that is not a number" 1 "setting 'hidden' = 'abc' is not an integer"
          fit --data ${bad}/category --set hidden=abc --out ${bad}/never.flowad)
bad_input("option: a map size of 0x5" 1 "--map-size expects HxW .* got '0x5'"
          eval --data ${bad}/category --map-size 0x5)
bad_input("option: an output folder that cannot exist" 1 "--out .*missing-folder/m\\.flowad: folder .*missing-folder does not exist \\(nothing was fitted\\)"
          fit --data ${bad}/category ${tiny_fit} --out ${bad}/missing-folder/m.flowad)
bad_input("option: score --out on a file" 1 "--out .*model\\.flowad.* is not a folder"
          score ${bad}/model.flowad ${bad}/gray.png --out ${bad}/model.flowad)
bad_input("features: NaN" 1 "nan\\.npy holds NaN at \\(n=0, c=1, h=0, w=1\\) of shape 6x4x4x4"
          fit --features ${bad}/nan.npy --set groups=2 --set hidden=4 --set blocks=1 --epochs 1 --out ${bad}/never.flowad)
bad_input("features: a value beyond 1e12" 1 "holds 1e\\+30 at .* beyond the ±1e\\+12 accepted"
          fit --features ${bad}/huge.npy --set groups=2 --set hidden=4 --set blocks=1 --epochs 1 --out ${bad}/never.flowad)
bad_input("features: another extractor's (8 channels, not 4)" 1 "has shape 6x8x4x4 but the model expects Nx4x4x4"
          score --model-file ${bad}/features.flowad --features ${bad}/wide.npy)
