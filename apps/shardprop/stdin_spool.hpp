// `shardprop train --data -`: training reads its data several times, and a pipe can be read
// only once, so standard input is first copied, as its bytes come (compressed stays compressed),
// to an unlinked temporary file that then takes standard input's place.
#pragma once

namespace shardprop::cli {

// Copies standard input to an unlinked file in $TMPDIR (else /tmp) and makes that file
// descriptor 0, read from its start: the library's "-" then reads it, and can read it again.
// The file has no name, so it goes with the process however that ends. Throws Error
// "<stdin>: cannot copy standard input to DIR: reason".
void spool_standard_input();

}  // namespace shardprop::cli
