//! `raymon check config`: promtool's check of config files, with its output
//! and exit status.

/// Checks each file and exits with status 1 when one is invalid.
pub(crate) fn run(files: &[std::path::PathBuf]) -> anyhow::Result<()> {
    let paths: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
    let out = crate::config::check(&paths);
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    if !out.success {
        std::process::exit(1);
    }
    Ok(())
}
