// A structural check of MATLAB v5 files, run before matio reads one.
//
// matio trusts the sizes written in a file: a truncated variable leaves the
// rest of its data unset, and a variable header that declares a 1.3 GB list
// of dimensions makes Mat_VarReadInfo allocate that much (the .mat fuzzer
// found this with a 507-byte file). Reading a variable by name reads the
// header of every variable before it, so all of them are checked here.
#pragma once

#include <filesystem>

namespace pretext::data {

/// Walks the top-level elements of the v5 file `file` (already known to be
/// one) and checks, for each variable, plain or zlib-compressed:
///   - it lies wholly inside the file; a compressed one does not declare more
///     bytes than its compressed size can hold (deflate: at most 1032:1);
///   - its header is well formed: array flags, then 2 to 32 non-negative
///     dimensions, then a name, each inside the variable;
///   - it is a numeric, logical or char array. Cells, structs, objects and
///     sparse arrays, whose nested headers matio would follow, are refused:
///     an SVHN file holds only the arrays X and y.
/// Throws InputError naming the file, the byte offset and what is wrong.
void require_well_formed_mat_v5(const std::filesystem::path& file);

}  // namespace pretext::data
