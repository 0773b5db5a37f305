// NumPy .npy and .npz files: flowad's own reader and writer (no Python; zlib inflates compressed .npz).
//
// Reading. Formats 1.0, 2.0 and 3.0 of the .npy header are accepted. The header dictionary must hold
// exactly the keys 'descr', 'fortran_order' and 'shape'. Data are returned as float32 in C order:
//   '<f4' and '>f4'                  read as is (big-endian byte-swapped);
//   '<f8' '>f8' '<f2' '>f2'          converted to float32 (a finite double outside float's range is rejected);
//   '|i1' '|u1' '|b1', '<i2'..'<i8',
//   '<u2'..'<u8' (and big-endian)    converted to float32 (integers above 2^24 are rounded);
// everything else (complex, strings, objects, structured and datetime dtypes, '=' byte order for
// multi-byte types) is rejected. npy_array::dtype keeps the descriptor found in the file, so callers
// that need float32 on disk (network weights) can insist on it. fortran_order True is rejected.
// The payload must be exactly as long as the shape says.
//
// .npz files are zip archives of .npy members, read by walking the zip central directory (zip64
// included) with bounds checks. Members may be stored (np.savez) or deflated (np.savez_compressed),
// also mixed in one archive; deflated members are inflated as they are parsed, never held twice in
// memory. Every member must be intact: its CRC-32 matches, and a deflated one is a sound stream that
// inflates to exactly the size the directory declares (a size beyond deflate's 1032:1 ratio is
// refused before anything is allocated). Other compression methods and encryption are rejected.
//
// Writing produces float32 little-endian C-order .npy files (format 1.0, header padded to 64 bytes)
// and stored (uncompressed) .npz archives, always into a temporary file in the target directory that
// is renamed over the target once complete, so a reader never sees a half-written file.
//
// Every failure is a flowad::error: errc::io_error when a file cannot be opened, read or written,
// errc::bad_file when its content is malformed or unsupported. Messages name the file and, for .npz,
// the member.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {

// An n-dimensional array read from or written to .npy: float32 values in C (row-major) order.
struct npy_array {
  std::vector<index_t> shape;  // empty for a 0-d array (one element)
  aligned_vector<float> data;  // product(shape) values
  std::string dtype = "<f4";   // the descriptor in the file ('<f4', '<f8', '|u1', ...)

  index_t numel() const noexcept {
    index_t n = 1;
    for (index_t d : shape) n *= d;
    return n;
  }
  // "64x3x7x7" ("scalar" for a 0-d array).
  std::string shape_str() const;
};

// One member of an .npz archive; name without the ".npy" suffix (numpy's key).
struct npz_entry {
  std::string name;
  npy_array array;
};

// Reads an .npy file.
npy_array read_npy(const std::string& path);

// Parses an .npy image held in memory; `name` is used in error messages.
npy_array parse_npy(const void* bytes, std::size_t size, const std::string& name);

// Reads every member of an .npz archive, in archive order.
std::vector<npz_entry> read_npz(const std::string& path);

// Names (without ".npy") of the members of an .npz archive, in archive order, without reading them.
std::vector<std::string> list_npz(const std::string& path);

// Reads one member ("features.0.0.weight" or "features.0.0.weight.npy") of an .npz archive.
npy_array read_npz_member(const std::string& path, const std::string& member);

// Writes a float32 .npy file (temporary file + rename). The shape's product must equal data.size().
void write_npy(const std::string& path, const npy_array& array);
void write_npy(const std::string& path, span<const float> data, const std::vector<index_t>& shape);

// Writes a stored (uncompressed) .npz archive of float32 arrays (temporary file + rename). Member
// names get the ".npy" suffix; they must be non-empty, distinct, and free of '/', '\\' and NUL.
void write_npz(const std::string& path, const std::vector<npz_entry>& entries);

// ------------------------------------------------------------------------------------------------
// Feature maps: N x C x H x W float32, C order (what np.save writes for a PyTorch NCHW tensor).

// Writes v (any strides) as an N x C x H x W array.
void write_npy(const std::string& path, const_view v);

// Reads a 4-d array into a tensor of layout l; throws errc::bad_file naming the file unless the array
// is 4-d.
tensor read_npy_tensor(const std::string& path, layout l = layout::nchw);

// The same for an array already read (`what` names it in messages).
tensor to_tensor(const npy_array& array, const std::string& what, layout l = layout::nchw);

}  // namespace v0
}  // namespace flowad
