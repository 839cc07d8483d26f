//! From a loaded config to the discovery jobs it describes.

use crate::config::Config;
use crate::discovery::{self, JobDiscovery, TargetGroup, file_sd::FileSd, http_sd::HttpSd};

/// Turns a config's discovery sections into discovery jobs.
pub fn jobs_from_config(cfg: &Config) -> Result<Vec<JobDiscovery>, discovery::Error> {
    let mut jobs = Vec::with_capacity(cfg.scrape_configs.len());
    for sc in &cfg.scrape_configs {
        let static_groups = sc
            .static_configs
            .iter()
            .enumerate()
            .map(|(i, s)| TargetGroup::new(&s.targets, s.labels.clone(), i.to_string()))
            .collect();
        let file_sd = sc
            .file_sd_configs
            .iter()
            .map(|f| FileSd::new(&f.files, f.refresh_interval))
            .collect::<Result<Vec<_>, _>>()?;
        // As Prometheus: a provider that cannot be created (its CA file is
        // missing, say) is reported and left out; the job's others run.
        let http_sd = sc
            .http_sd_configs
            .iter()
            .filter_map(|h| match HttpSd::new(h) {
                Ok(sd) => Some(sd),
                Err(error) => {
                    tracing::error!(%error, job = %sc.job_name, "cannot create service discovery");
                    None
                }
            })
            .collect();
        jobs.push(JobDiscovery {
            job: sc.job_name.clone(),
            static_groups,
            file_sd,
            http_sd,
        });
    }
    Ok(jobs)
}
