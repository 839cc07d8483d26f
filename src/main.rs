//! The `raymon` binary: hands over to [`raymon::launcher::run`].

fn main() -> anyhow::Result<()> {
    raymon::launcher::run()
}
