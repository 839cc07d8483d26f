//! Ray-like exposition bodies for one simulated target: metric families,
//! label sets and value shapes modelled on the scrapes of a real Ray 2.60
//! cluster (about a dozen labels per series, `SessionName` and the three
//! `otel_scope_*` labels on every one, empty values, label values with
//! spaces, commas, parentheses and single quotes, histograms whose `le` is
//! rendered like `"10.0"` and `"+Inf"`), with counters that grow irregularly
//! and a configurable share of series replaced every scrape period.
//!
//! Pure and deterministic: the same seed, target and period give the same
//! body. It knows nothing of sockets, processes or time.

use std::fmt::Write as _;
use std::io::Write as _;

/// How a simulated target's series look and change.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Sample lines per body (every `_bucket`, `_sum` and `_count` counts).
    pub series: usize,
    /// Share of the series that belong to histograms, from 0 to 1.
    pub histogram_fraction: f64,
    /// Share of the series replaced by new ones at every period, from 0 to 1.
    pub churn: f64,
    pub seed: u64,
}

/// Which text a body is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `text/plain; version=0.0.4`.
    Text,
    /// `application/openmetrics-text; version=1.0.0`, ending with `# EOF`.
    OpenMetrics,
}

impl BodyFormat {
    /// Picks the format the way Ray's exporter (prometheus_client) does: it
    /// answers OpenMetrics when the `Accept` header names it.
    pub fn from_accept(accept: &str) -> BodyFormat {
        if accept.contains("application/openmetrics-text") {
            BodyFormat::OpenMetrics
        } else {
            BodyFormat::Text
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            BodyFormat::Text => "text/plain; version=0.0.4; charset=utf-8",
            BodyFormat::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// How a gauge's value moves.
#[derive(Debug, Clone, Copy)]
enum Scale {
    /// Small integer counts (tasks, actors in a state).
    Count,
    /// 0-100 with one decimal.
    Percent,
    /// Large byte counts.
    Bytes,
    /// Megabytes with a fraction.
    Megabytes,
}

/// How a label's value is made.
#[derive(Clone, Copy)]
enum Value {
    Const(&'static str),
    /// One of a list, chosen by the series' index in its family.
    Pick(&'static [&'static str]),
    /// Distinct for every series of the family (`k` is that index).
    Unique(fn(usize, &mut String)),
    /// Changes when the series is replaced by churn: a 56-hex-digit worker
    /// id, an 8-hex-digit job id, or a pid.
    WorkerId,
    JobId,
    Pid,
    Session,
    Node,
}

struct Family {
    /// For counters, without `_total`.
    name: &'static str,
    help: &'static str,
    kind: Kind,
    scale: Scale,
    /// Sorted by name, without `le`.
    labels: Vec<(&'static str, Value)>,
    buckets: &'static [&'static str],
}

const OTEL_NAME: &str = "ray._private.telemetry.open_telemetry_metric_recorder";
const VERSION: &str = "2.60.0";

const TASK_STATES: &[&str] = &[
    "RUNNING",
    "SUBMITTED_TO_WORKER",
    "GETTING_AND_PINNING_ARGS",
    "PENDING_NODE_ASSIGNMENT",
    "FINISHED",
    "FAILED",
];
const ACTOR_STATES: &[&str] = &[
    "ALIVE",
    "DEPENDENCIES_UNREADY",
    "PENDING_CREATION",
    "ALIVE_IDLE",
    "RESTARTING",
    "DEAD",
];
const GRPC_BUCKETS: &[&str] = &["0.1", "1.0", "10.0", "100.0", "1000.0", "10000.0", "+Inf"];
const OP_BUCKETS: &[&str] = &["1.0", "10.0", "100.0", "1000.0", "10000.0", "+Inf"];
const SERVE_BUCKETS: &[&str] = &[
    "1.0", "2.0", "5.0", "10.0", "20.0", "50.0", "100.0", "200.0", "300.0", "400.0", "500.0",
    "1000.0", "2000.0", "5000.0", "10000.0", "60000.0", "120000.0", "300000.0", "600000.0", "+Inf",
];

fn task_name(k: usize, s: &mut String) {
    const BASE: &[&str] = &["Accum.add", "f", "Sleeper.sleep", "map_batches(<lambda>)"];
    let _ = write!(s, "{}_{k}", BASE[k % BASE.len()]);
}
fn grpc_method(k: usize, s: &mut String) {
    const BASE: &[&str] = &[
        "NodeInfoGcsService.grpc_server.GetAllNodeAddressAndLiveness",
        "CoreWorkerService.grpc_server.PushTask",
        "NodeManagerService.grpc_server.RequestWorkerLease",
    ];
    let _ = write!(s, "{}{k}", BASE[k % BASE.len()]);
}
fn io_context(k: usize, s: &mut String) {
    let _ = write!(s, "raylet_main_io_context.handler_{k}");
}
fn long_poll_namespace(k: usize, s: &mut String) {
    let _ = write!(
        s,
        "(LongPollNamespace.DEPLOYMENT_CONFIG, Deployment(name='Echo {k}', app='echoapp'))"
    );
}
fn actor_name(k: usize, s: &mut String) {
    const BASE: &[&str] = &["Counter", "ServeReplica:echoapp:Echo", "Sleeper"];
    let _ = write!(s, "{}{k}", BASE[k % BASE.len()]);
}
fn component_name(k: usize, s: &mut String) {
    const BASE: &[&str] = &["ray::IDLE", "ray::Counter.add", "raylet", "agent"];
    let _ = write!(s, "{} {k}", BASE[k % BASE.len()]);
}
fn deployment_name(k: usize, s: &mut String) {
    let _ = write!(s, "Echo_{k}");
}

/// Families every target has once (one series each), as Ray's node gauges.
fn node_families() -> Vec<Family> {
    let node_gauge = |name, help, scale| Family {
        name,
        help,
        kind: Kind::Gauge,
        scale,
        labels: vec![
            ("IsHeadNode", Value::Const("false")),
            ("RayNodeType", Value::Const("worker")),
            ("SessionName", Value::Session),
            ("Version", Value::Const(VERSION)),
            ("ip", Value::Node),
            ("otel_scope_name", Value::Const(OTEL_NAME)),
            ("otel_scope_schema_url", Value::Const("")),
            ("otel_scope_version", Value::Const("")),
        ],
        buckets: &[],
    };
    vec![
        node_gauge(
            "ray_node_cpu_utilization",
            "Total CPU usage on a ray node",
            Scale::Percent,
        ),
        node_gauge(
            "ray_node_cpu_count",
            "Total CPUs available on a ray node",
            Scale::Count,
        ),
        node_gauge(
            "ray_node_mem_used",
            "Memory usage on a ray node",
            Scale::Bytes,
        ),
        node_gauge(
            "ray_node_mem_total",
            "Total memory on a ray node",
            Scale::Bytes,
        ),
        node_gauge(
            "ray_node_mem_available",
            "Memory available on a ray node",
            Scale::Bytes,
        ),
        node_gauge(
            "ray_node_disk_usage",
            "Total disk usage (bytes) on a ray node",
            Scale::Bytes,
        ),
        node_gauge(
            "ray_node_disk_free",
            "Total disk free (bytes) on a ray node",
            Scale::Bytes,
        ),
        node_gauge("ray_node_network_sent", "Total network sent", Scale::Bytes),
        node_gauge(
            "ray_node_network_received",
            "Total network received",
            Scale::Bytes,
        ),
        node_gauge(
            "ray_node_gram_used",
            "Total GPUs' RAM usage on a ray node",
            Scale::Megabytes,
        ),
    ]
}

fn core(extra: &[(&'static str, Value)]) -> Vec<(&'static str, Value)> {
    let mut v = vec![
        ("NodeAddress", Value::Node),
        ("SessionName", Value::Session),
        ("Version", Value::Const(VERSION)),
        ("otel_scope_name", Value::Const(OTEL_NAME)),
        ("otel_scope_schema_url", Value::Const("")),
        ("otel_scope_version", Value::Const("")),
    ];
    v.extend_from_slice(extra);
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

/// Families that grow with the series budget: scalar ones first.
fn scalar_families() -> Vec<Family> {
    vec![
        Family {
            name: "ray_tasks",
            help: "Current number of tasks currently in a particular state.",
            kind: Kind::Gauge,
            scale: Scale::Count,
            labels: core(&[
                ("Component", Value::Const("core_worker")),
                ("IsRetry", Value::Pick(&["0", "1"])),
                ("JobId", Value::JobId),
                ("Name", Value::Unique(task_name)),
                ("Source", Value::Pick(&["executor", "owner"])),
                ("State", Value::Pick(TASK_STATES)),
            ]),
            buckets: &[],
        },
        Family {
            name: "ray_grpc_server_req_finished",
            help: "Finished request number in grpc server",
            kind: Kind::Counter,
            scale: Scale::Count,
            labels: core(&[
                (
                    "Component",
                    Value::Pick(&["gcs_server", "raylet", "core_worker"]),
                ),
                ("Method", Value::Unique(grpc_method)),
                ("WorkerId", Value::WorkerId),
            ]),
            buckets: &[],
        },
        Family {
            name: "ray_actors",
            help: "An actor can be in one of DEPENDENCIES_UNREADY, PENDING_CREATION, ALIVE, ALIVE_IDLE, ALIVE_RUNNING_TASKS, RESTARTING, or DEAD states.",
            kind: Kind::Gauge,
            scale: Scale::Count,
            labels: core(&[
                ("Component", Value::Const("gcs_server")),
                ("JobId", Value::JobId),
                ("Name", Value::Unique(actor_name)),
                ("Source", Value::Const("gcs")),
                ("State", Value::Pick(ACTOR_STATES)),
            ]),
            buckets: &[],
        },
        Family {
            name: "ray_object_store_memory",
            help: "Object store memory by various sub-kinds on this node",
            kind: Kind::Gauge,
            scale: Scale::Bytes,
            labels: core(&[
                ("Component", Value::Const("raylet")),
                (
                    "Location",
                    Value::Pick(&["MMAP_SHM", "MMAP_DISK", "SPILLED", "WORKER_HEAP"]),
                ),
                ("Name", Value::Unique(actor_name)),
                ("ObjectState", Value::Pick(&["", "SEALED", "UNSEALED"])),
                ("WorkerId", Value::WorkerId),
            ]),
            buckets: &[],
        },
        Family {
            name: "ray_component_rss_mb",
            help: "RSS usage of all components on the node.",
            kind: Kind::Gauge,
            scale: Scale::Megabytes,
            labels: {
                let mut v = core(&[
                    ("Component", Value::Unique(component_name)),
                    ("ip", Value::Node),
                    ("pid", Value::Pid),
                ]);
                v.retain(|(n, _)| *n != "NodeAddress");
                v
            },
            buckets: &[],
        },
        Family {
            name: "ray_serve_deployment_request_counter",
            help: "The number of queries that have been processed in this replica.",
            kind: Kind::Counter,
            scale: Scale::Count,
            labels: core(&[
                ("Component", Value::Const("core_worker")),
                ("WorkerId", Value::WorkerId),
                ("application", Value::Const("echoapp")),
                ("deployment", Value::Unique(deployment_name)),
                ("replica", Value::JobId),
                ("route", Value::Const("/echo")),
            ]),
            buckets: &[],
        },
    ]
}

fn histogram_families() -> Vec<Family> {
    vec![
        Family {
            name: "ray_grpc_server_req_process_time_ms",
            help: "Request latency in grpc server",
            kind: Kind::Histogram,
            scale: Scale::Count,
            labels: core(&[
                (
                    "Component",
                    Value::Pick(&["gcs_server", "raylet", "core_worker"]),
                ),
                ("Method", Value::Unique(grpc_method)),
                ("WorkerId", Value::WorkerId),
            ]),
            buckets: GRPC_BUCKETS,
        },
        Family {
            name: "ray_operation_run_time_ms",
            help: "operation execution time",
            kind: Kind::Histogram,
            scale: Scale::Count,
            labels: core(&[
                ("Component", Value::Const("raylet")),
                ("Name", Value::Unique(io_context)),
                ("WorkerId", Value::WorkerId),
            ]),
            buckets: OP_BUCKETS,
        },
        Family {
            name: "ray_serve_long_poll_latency_ms",
            help: "The time for a long poll call to complete (ms).",
            kind: Kind::Histogram,
            scale: Scale::Count,
            labels: core(&[
                ("Component", Value::Const("core_worker")),
                ("WorkerId", Value::WorkerId),
                ("namespace", Value::Unique(long_poll_namespace)),
            ]),
            buckets: SERVE_BUCKETS,
        },
    ]
}

/// One series, or one histogram (its buckets, `_sum` and `_count`).
struct Slot {
    family: u16,
    /// Index among the family's slots; keeps label sets distinct.
    k: u32,
    /// How many times churn replaced this slot.
    generation: u32,
    /// The rendered `name{labels} ` of each series, back to back.
    prefixes: Vec<u8>,
    ends: Vec<u32>,
    /// Gauge or counter value, or the histogram's sum.
    value: f64,
    /// Histogram bucket counts, not cumulative.
    counts: Vec<u64>,
}

/// Share of the series (a histogram counts as one) that do not move in a
/// period; with the other families' own stillness, about 58% of samples
/// repeat, as in real Ray data.
const IDLE_SHARE: f64 = 0.45;

/// The series of one target and their values at the current period.
pub struct TargetExposition {
    families: Vec<Family>,
    slots: Vec<Slot>,
    /// Slots that never churn (node gauges).
    fixed: usize,
    shape: Shape,
    target: u64,
    session: String,
    node: String,
    rng: u64,
    period: u64,
    series: usize,
}

impl TargetExposition {
    /// The series of target number `target` at period 0.
    pub fn new(shape: Shape, target: usize) -> TargetExposition {
        let target = target as u64;
        let session = format!(
            "session_2026-11-26_03-35-11_{:06}_{}",
            shape.seed % 1_000_000,
            5703
        );
        // TEST-NET-3 addresses, one per simulated node.
        let node = format!("203.0.{}.{}", (target / 250) % 256, target % 250 + 1);
        let mut families = node_families();
        let fixed_families = families.len();
        let scalar_start = families.len();
        families.extend(scalar_families());
        let hist_start = families.len();
        families.extend(histogram_families());

        let mut plan: Vec<(u16, u32)> = Vec::new();
        let mut used = 0usize;
        let budget = shape.series;
        for f in 0..fixed_families {
            if used < budget {
                plan.push((f as u16, 0));
                used += 1;
            }
        }
        let fixed = plan.len();
        let hist_budget = ((budget.saturating_sub(used)) as f64
            * shape.histogram_fraction.clamp(0.0, 1.0)) as usize;
        let mut hist_used = 0usize;
        let mut per_family = vec![0u32; families.len()];
        let mut i = 0usize;
        let n_hist = families.len() - hist_start;
        // Histograms round-robin over their families while they fit.
        let mut misses = 0;
        while misses < n_hist {
            let f = hist_start + i % n_hist;
            i += 1;
            let cost = families[f].buckets.len() + 2;
            if hist_used + cost > hist_budget {
                misses += 1;
                continue;
            }
            misses = 0;
            plan.push((f as u16, per_family[f]));
            per_family[f] += 1;
            hist_used += cost;
        }
        used += hist_used;
        let n_scalar = hist_start - scalar_start;
        let mut j = 0usize;
        while used < budget {
            let f = scalar_start + j % n_scalar;
            j += 1;
            plan.push((f as u16, per_family[f]));
            per_family[f] += 1;
            used += 1;
        }
        // Families are contiguous in a body.
        plan[fixed..].sort_unstable();

        let mut t = TargetExposition {
            families,
            slots: Vec::with_capacity(plan.len()),
            fixed,
            shape,
            target,
            session,
            node,
            rng: splitmix(shape.seed ^ target.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            period: 0,
            series: used,
        };
        let mut scratch = String::new();
        for (family, k) in plan {
            let mut slot = Slot {
                family,
                k,
                generation: 0,
                prefixes: Vec::new(),
                ends: Vec::new(),
                value: 0.0,
                counts: Vec::new(),
            };
            t.render_prefixes(&mut slot, &mut scratch);
            t.reset_values(&mut slot);
            t.slots.push(slot);
        }
        t
    }

    /// Sample lines in every body.
    pub fn series(&self) -> usize {
        self.series
    }

    /// Moves values (and churn) forward to `period`; earlier periods are
    /// ignored, as values never go back.
    pub fn advance_to(&mut self, period: u64) {
        let mut scratch = String::new();
        while self.period < period {
            self.period += 1;
            self.step(&mut scratch);
        }
    }

    fn next(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix(self.rng)
    }

    /// A uniform float in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn step(&mut self, scratch: &mut String) {
        let mut slots = std::mem::take(&mut self.slots);
        for (i, slot) in slots.iter_mut().enumerate() {
            if i >= self.fixed && self.shape.churn > 0.0 && self.unit() < self.shape.churn {
                slot.generation += 1;
                self.render_prefixes(slot, scratch);
                self.reset_values(slot);
                continue;
            }
            // Much of a Ray node is idle between two scrapes: in real Ray
            // data (Prometheus 2.42 golden data) 58% of samples repeat the
            // previous value.
            if self.unit() < IDLE_SHARE {
                continue;
            }
            let fam = &self.families[slot.family as usize];
            let (kind, scale, nb) = (fam.kind, fam.scale, fam.buckets.len());
            match kind {
                Kind::Counter => {
                    // Irregular growth: often still, sometimes a burst.
                    let r = self.unit();
                    if r > 0.3 {
                        slot.value += (self.unit() * 50.0).floor() + 1.0;
                    }
                }
                Kind::Gauge => slot.value = self.gauge_step(scale, slot.value),
                Kind::Histogram => {
                    let n = (self.unit() * 12.0) as usize;
                    for _ in 0..n {
                        // Mostly fast, with a long tail.
                        let mut b = 0;
                        while b + 1 < nb && self.unit() < 0.45 {
                            b += 1;
                        }
                        slot.counts[b] += 1;
                        slot.value += 10f64.powi(b as i32 - 1) * (0.5 + self.unit());
                    }
                }
            }
        }
        self.slots = slots;
    }

    fn gauge_step(&mut self, scale: Scale, v: f64) -> f64 {
        match scale {
            Scale::Count => {
                let r = self.unit();
                if r < 0.2 {
                    (v - 1.0).max(0.0)
                } else if r > 0.8 {
                    v + 1.0
                } else {
                    v
                }
            }
            Scale::Percent => (self.unit() * 1000.0).round() / 10.0,
            Scale::Bytes => (v + (self.unit() - 0.5) * 4.0e7).max(1.0e6).round(),
            Scale::Megabytes => ((v + (self.unit() - 0.5) * 8.0).max(20.0) * 1e6).round() / 1e6,
        }
    }

    fn reset_values(&mut self, slot: &mut Slot) {
        let fam = &self.families[slot.family as usize];
        let (kind, scale, nb) = (fam.kind, fam.scale, fam.buckets.len());
        slot.counts.clear();
        slot.counts.resize(nb, 0);
        slot.value = match (kind, scale) {
            (Kind::Gauge, Scale::Count) => (self.unit() * 8.0).floor(),
            (Kind::Gauge, Scale::Percent) => (self.unit() * 1000.0).round() / 10.0,
            (Kind::Gauge, Scale::Bytes) => (self.unit() * 1.6e10).round(),
            (Kind::Gauge, Scale::Megabytes) => ((20.0 + self.unit() * 500.0) * 1e6).round() / 1e6,
            _ => 0.0,
        };
    }

    fn render_prefixes(&self, slot: &mut Slot, scratch: &mut String) {
        let fam = &self.families[slot.family as usize];
        slot.prefixes.clear();
        slot.ends.clear();
        let k = slot.k as usize;
        let g = slot.generation as u64;
        let id = splitmix(
            self.shape.seed
                ^ self.target.rotate_left(20)
                ^ (k as u64).rotate_left(40)
                ^ g.wrapping_mul(0xA24B_AED4_963E_E407)
                ^ u64::from(slot.family),
        );
        let mut labels = String::new();
        let mut le_at = 0;
        for (name, value) in &fam.labels {
            if fam.kind == Kind::Histogram && le_at == 0 && *name > "le" {
                le_at = labels.len();
            }
            if !labels.is_empty() {
                labels.push(',');
            }
            labels.push_str(name);
            labels.push_str("=\"");
            match value {
                Value::Const(s) => labels.push_str(s),
                Value::Pick(list) => labels.push_str(list[k % list.len()]),
                Value::Unique(f) => {
                    scratch.clear();
                    f(k, scratch);
                    labels.push_str(scratch);
                }
                Value::WorkerId => {
                    let _ = write!(
                        labels,
                        "{:016x}{:016x}{:016x}{:08x}",
                        id,
                        splitmix(id),
                        splitmix(id ^ 1),
                        splitmix(id ^ 2) as u32
                    );
                }
                Value::JobId => {
                    let _ = write!(labels, "{:08x}", id as u32);
                }
                Value::Pid => {
                    let _ = write!(labels, "{}", 1000 + id % 4_000_000);
                }
                Value::Session => labels.push_str(&self.session),
                Value::Node => labels.push_str(&self.node),
            }
            labels.push('"');
        }
        let line = |out: &mut Vec<u8>, suffix: &str, labels: &str| {
            out.extend_from_slice(fam.name.as_bytes());
            out.extend_from_slice(suffix.as_bytes());
            out.push(b'{');
            out.extend_from_slice(labels.as_bytes());
            out.extend_from_slice(b"} ");
        };
        match fam.kind {
            Kind::Gauge => line(&mut slot.prefixes, "", &labels),
            Kind::Counter => line(&mut slot.prefixes, "_total", &labels),
            Kind::Histogram => {
                let (head, tail) = if le_at == 0 {
                    (labels.as_str(), "")
                } else {
                    labels.split_at(le_at)
                };
                for le in fam.buckets {
                    scratch.clear();
                    scratch.push_str(head);
                    if !scratch.is_empty() {
                        scratch.push(',');
                    }
                    let _ = write!(scratch, "le=\"{le}\"");
                    scratch.push_str(tail);
                    line(&mut slot.prefixes, "_bucket", scratch);
                    slot.ends.push(slot.prefixes.len() as u32);
                }
                line(&mut slot.prefixes, "_sum", &labels);
                slot.ends.push(slot.prefixes.len() as u32);
                line(&mut slot.prefixes, "_count", &labels);
            }
        }
        slot.ends.push(slot.prefixes.len() as u32);
    }

    /// The values of the current period's sample lines, in body order, into
    /// `out` (cleared first): what a scrape of [`Self::render`]'s body reads.
    pub fn values(&self, out: &mut Vec<f64>) {
        out.clear();
        for slot in &self.slots {
            slot_values(slot, self.families[slot.family as usize].kind, |_, v| {
                out.push(v)
            });
        }
    }

    /// Writes the body for the current period into `out` (cleared first).
    pub fn render(&self, format: BodyFormat, out: &mut Vec<u8>) {
        out.clear();
        let mut last_family = u16::MAX;
        for slot in &self.slots {
            let fam = &self.families[slot.family as usize];
            if slot.family != last_family {
                last_family = slot.family;
                let (suffix, ty) = match (fam.kind, format) {
                    (Kind::Counter, BodyFormat::Text) => ("_total", "counter"),
                    (Kind::Counter, BodyFormat::OpenMetrics) => ("", "counter"),
                    (Kind::Gauge, _) => ("", "gauge"),
                    (Kind::Histogram, _) => ("", "histogram"),
                };
                let _ = writeln!(out, "# HELP {}{suffix} {}", fam.name, fam.help);
                let _ = writeln!(out, "# TYPE {}{suffix} {ty}", fam.name);
            }
            let mut start = 0usize;
            slot_values(slot, fam.kind, |i, v| {
                let end = slot
                    .ends
                    .get(i)
                    .map_or(slot.prefixes.len(), |&e| e as usize);
                out.extend_from_slice(&slot.prefixes[start..end]);
                start = end;
                write_value(out, v);
            });
        }
        if format == BodyFormat::OpenMetrics {
            out.extend_from_slice(b"# EOF\n");
        }
    }
}

/// Calls `f` with each sample line of `slot` (its number within the slot)
/// and its value, in the order of the body: a histogram's cumulative
/// buckets, then its sum and count.
fn slot_values(slot: &Slot, kind: Kind, mut f: impl FnMut(usize, f64)) {
    match kind {
        Kind::Gauge | Kind::Counter => f(0, slot.value),
        Kind::Histogram => {
            let mut cum = 0u64;
            for i in 0..slot.ends.len() {
                if i < slot.counts.len() {
                    cum += slot.counts[i];
                    f(i, cum as f64);
                } else if i == slot.counts.len() {
                    f(i, slot.value);
                } else {
                    f(i, cum as f64);
                }
            }
        }
    }
}

/// Writes a value as Python's `repr` would for these magnitudes (`1198.0`,
/// `56.848384`) and ends the line.
fn write_value(out: &mut Vec<u8>, v: f64) {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = writeln!(out, "{v:.1}");
    } else {
        let _ = writeln!(out, "{v}");
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::textparse::{Entry, Format, MetricType, Parser};

    fn shape_with_churn(series: usize, churn: f64) -> Shape {
        Shape {
            series,
            histogram_fraction: 0.5,
            churn,
            seed: 42,
        }
    }

    /// Parses a body and returns each sample's raw series text and its labels.
    fn parse(body: &[u8], format: Format) -> Vec<(String, Vec<(String, String)>)> {
        let mut out = Vec::new();
        let mut types = 0;
        for e in Parser::new(body, format) {
            match e.unwrap_or_else(|e| panic!("{format:?}: {e}")) {
                Entry::Sample(s) => out.push((
                    String::from_utf8(s.series.to_vec()).unwrap(),
                    s.labels()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                )),
                Entry::Type { .. } => types += 1,
                _ => {}
            }
        }
        assert!(types > 0, "no TYPE lines");
        out
    }

    #[test]
    fn bodies_parse_in_both_formats_with_ray_shapes() {
        let t = TargetExposition::new(shape_with_churn(2000, 0.0), 3);
        assert_eq!(t.series(), 2000);
        let mut body = Vec::new();
        for (bf, f) in [
            (BodyFormat::Text, Format::PromText),
            (BodyFormat::OpenMetrics, Format::OpenMetrics),
        ] {
            t.render(bf, &mut body);
            assert_eq!(
                body.ends_with(b"# EOF\n"),
                bf == BodyFormat::OpenMetrics,
                "{bf:?}"
            );
            let samples = parse(&body, f);
            assert_eq!(samples.len(), 2000, "{bf:?}");
            let distinct: HashSet<&str> = samples.iter().map(|s| s.0.as_str()).collect();
            assert_eq!(distinct.len(), 2000, "duplicate series in {bf:?}");

            let mut buckets = 0;
            let mut inf = 0;
            let mut odd_values = 0;
            for (series, labels) in &samples {
                let get = |n: &str| labels.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
                assert!(get("SessionName").is_some(), "{series}");
                assert_eq!(
                    get("otel_scope_name"),
                    Some("ray._private.telemetry.open_telemetry_metric_recorder")
                );
                assert_eq!(get("otel_scope_schema_url"), Some(""));
                assert!((7..=14).contains(&labels.len()), "{series}");
                if let Some(le) = get("le") {
                    buckets += 1;
                    assert!(le == "+Inf" || le.contains('.'), "{le}");
                    if le == "+Inf" {
                        inf += 1;
                    }
                }
                if labels.iter().any(|(_, v)| {
                    v.contains(' ') && v.contains(',') && v.contains('(') && v.contains('\'')
                }) {
                    odd_values += 1;
                }
            }
            // Roughly half the series are histogram buckets, sums and counts.
            assert!(buckets > 600 && buckets < 1000, "{buckets} buckets");
            assert!(inf > 50, "{inf} histograms");
            assert!(
                odd_values > 0,
                "no label value with spaces, commas, parentheses and quotes"
            );
            let labels_per_series =
                samples.iter().map(|s| s.1.len()).sum::<usize>() as f64 / samples.len() as f64;
            assert!(
                (10.0..=14.0).contains(&labels_per_series),
                "{labels_per_series} labels per series"
            );
        }
    }

    #[test]
    fn churn_replaces_the_requested_share_and_counters_grow() {
        let mut t = TargetExposition::new(shape_with_churn(3000, 0.1), 0);
        let mut body = Vec::new();
        t.render(BodyFormat::Text, &mut body);
        let before = parse(&body, Format::PromText);
        t.advance_to(1);
        t.render(BodyFormat::Text, &mut body);
        let after = parse(&body, Format::PromText);
        assert_eq!(after.len(), 3000);
        let old: HashSet<&str> = before.iter().map(|s| s.0.as_str()).collect();
        let new = after.iter().filter(|s| !old.contains(s.0.as_str())).count();
        let share = new as f64 / 3000.0;
        assert!((0.06..=0.14).contains(&share), "churned {share}");

        // Without churn, counters never go down and some go up.
        let mut t = TargetExposition::new(shape_with_churn(500, 0.0), 1);
        let values = |t: &TargetExposition| {
            let mut b = Vec::new();
            t.render(BodyFormat::OpenMetrics, &mut b);
            // Ray has gauges named `*_total`: go by the family's type.
            let mut v = Vec::new();
            let mut kind = MetricType::Gauge;
            for e in Parser::new(&b, Format::OpenMetrics) {
                match e.unwrap() {
                    Entry::Type { kind: k, .. } => kind = k,
                    Entry::Sample(s)
                        if kind == MetricType::Counter
                            || (kind == MetricType::Histogram && !s.name().ends_with("_sum")) =>
                    {
                        v.push(s.value)
                    }
                    _ => {}
                }
            }
            v
        };
        let a = values(&t);
        t.advance_to(3);
        let b = values(&t);
        assert_eq!(a.len(), b.len());
        assert!(a.iter().zip(&b).all(|(x, y)| y >= x));
        assert!(a.iter().zip(&b).any(|(x, y)| y > x));
    }

    fn shape(series: usize) -> Shape {
        Shape {
            series,
            histogram_fraction: 0.5,
            churn: 0.0,
            seed: 7,
        }
    }

    #[test]
    fn exact_series_count_and_deterministic() {
        for n in [0, 3, 10, 11, 50, 1000] {
            let t = TargetExposition::new(shape(n), 2);
            let mut body = Vec::new();
            t.render(BodyFormat::Text, &mut body);
            let lines = body
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty() && l[0] != b'#');
            assert_eq!(lines.count(), n, "series {n}");
            let mut again = Vec::new();
            TargetExposition::new(shape(n), 2).render(BodyFormat::Text, &mut again);
            assert_eq!(body, again);
        }
    }

    #[test]
    fn counters_never_decrease() {
        let mut t = TargetExposition::new(shape(200), 0);
        let before: Vec<f64> = t.slots.iter().map(|s| s.value).collect();
        t.advance_to(5);
        for (s, b) in t.slots.iter().zip(before) {
            if t.families[s.family as usize].kind != Kind::Gauge {
                assert!(s.value >= b);
            }
        }
    }

    #[test]
    fn values_are_what_the_body_says() {
        let mut t = TargetExposition::new(shape(500), 3);
        t.advance_to(4);
        let mut body = Vec::new();
        t.render(BodyFormat::Text, &mut body);
        let parsed: Vec<f64> = std::str::from_utf8(&body)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        let mut values = Vec::new();
        t.values(&mut values);
        assert_eq!(values.len(), t.series());
        assert_eq!(
            values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            parsed.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn values_repeat_as_often_as_in_real_ray_data() {
        let mut t = TargetExposition::new(shape(2000), 1);
        let (mut prev, mut cur) = (Vec::new(), Vec::new());
        t.values(&mut prev);
        let (mut same, mut all) = (0, 0);
        for p in 1..=20 {
            t.advance_to(p);
            t.values(&mut cur);
            same += prev.iter().zip(&cur).filter(|(a, b)| a == b).count();
            all += cur.len();
            std::mem::swap(&mut prev, &mut cur);
        }
        let share = same as f64 / all as f64;
        assert!((0.50..=0.66).contains(&share), "{share}");
    }
}
