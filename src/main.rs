//! The `raymon` binary: hands over to [`raymon::cli::run`].

// jemalloc instead of glibc's malloc: glibc's spent much of the scrape
// threads' CPU consolidating and splitting free blocks (large body buffers
// beside many small label strings); the measurement is in docs/decisions.md.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

// Two arenas for two cores (the default is four per core), and freed pages
// go back to the system after a second instead of ten: resident memory per
// series is one of our bars.
// jemalloc reads this symbol at start; naming an exported symbol is the
// one unsafe act in the crate.
#[allow(non_upper_case_globals, unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] =
    b"narenas:2,background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

fn main() -> anyhow::Result<()> {
    raymon::cli::run()
}
