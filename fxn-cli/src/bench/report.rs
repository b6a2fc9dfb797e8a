//! The benchmark's document: the machine, the settings, every case's figures; and its
//! text table and CSV forms.

use std::fmt::Write as _;

use metal_matmul::{BackendKind, CpuInfo, DeviceInfo, Shape};
use serde::Serialize;

use super::Opened;
use super::measure::{CaseResult, Settings};
use crate::output::JSON_FORMAT_VERSION;

/// The implementation plan's Metal targets: (size of a square product, GFLOPS).
pub const METAL_TARGETS: &[(usize, f64)] = &[(256, 150.0), (1024, 500.0), (4096, 700.0)];

/// The plan's Metal target for `shape`, when it has one.
pub fn metal_target(shape: Shape) -> Option<f64> {
    METAL_TARGETS
        .iter()
        .find(|(size, _)| shape == Shape::square(*size))
        .map(|&(_, gflops)| gflops)
}

/// A backend as the report describes it.
#[derive(Debug, Serialize)]
pub struct BackendEntry {
    /// Its label in the table and the plot.
    pub label: String,
    /// `cpu` or `metal`.
    pub kind: BackendKind,
    /// CPU worker threads.
    pub threads: Option<usize>,
    /// Its device.
    pub device: DeviceInfo,
}

/// The `bench --json` document.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// The layout version of this document.
    pub format_version: u32,
    /// fxn-cli's version.
    pub version: &'static str,
    /// The machine's CPU.
    pub cpu: CpuInfo,
    /// The 1-, 5- and 15-minute load averages when the run ended (Linux only): other
    /// work on the machine lowers the figures.
    pub load_average: Option<[f64; 3]>,
    /// How cases were timed.
    pub settings: Settings,
    /// The backends timed; results refer to them by index.
    pub backends: Vec<BackendEntry>,
    /// One entry per case, in the order run.
    pub results: Vec<CaseResult>,
}

impl BenchReport {
    /// The document for `results` measured on `opened`.
    pub fn new(opened: &[Opened], results: Vec<CaseResult>, settings: &Settings) -> Self {
        Self {
            format_version: JSON_FORMAT_VERSION,
            version: env!("CARGO_PKG_VERSION"),
            cpu: CpuInfo::detect(),
            load_average: load_average(),
            settings: *settings,
            backends: opened
                .iter()
                .map(|o| BackendEntry {
                    label: o.label.clone(),
                    kind: o.backend.kind(),
                    threads: o.threads,
                    device: o.backend.device_info(),
                })
                .collect(),
            results,
        }
    }
}

fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// `512³` for squares, `127×257×513` otherwise.
pub fn shape_label(s: Shape) -> String {
    if s.m == s.k && s.k == s.n {
        format!("{}³", s.m)
    } else {
        format!("{}×{}×{}", s.m, s.k, s.n)
    }
}

/// The text table.
pub fn table(r: &BenchReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "CPU: {} ({}, {} cores){}",
        r.cpu.model,
        r.cpu.simd,
        r.cpu.cores,
        r.load_average
            .map(|l| format!("; load average {:.2} {:.2} {:.2}", l[0], l[1], l[2]))
            .unwrap_or_default()
    );
    for b in &r.backends {
        let _ = writeln!(s, "{}: {}", b.label, b.device.name);
    }
    let _ = writeln!(
        s,
        "{} warm-up call(s), up to {} timed{}; GFLOPS = 2·m·k·n / wall time of one call. Shapes are m×k×n.",
        r.settings.warmup,
        r.settings.reps,
        match r.settings.rounds {
            1 => String::new(),
            n => format!(" per case in each of {n} rounds"),
        }
    );
    let metal = r.backends.iter().any(|b| b.kind == BackendKind::Metal);
    let cuda = r.backends.iter().any(|b| b.kind == BackendKind::Cuda);
    let callers = r.settings.callers;
    let mut head = vec![
        "shape",
        "backend",
        "method",
        "best GFLOPS",
        "median GFLOPS",
        "median ms",
    ];
    if metal || cuda {
        head.push("GPU ms");
    }
    if metal {
        head.push("target");
    }
    if cuda {
        head.extend(["GPU GFLOPS", "in ms", "out ms", "staging"]);
    }
    head.extend(["peak extra MiB", "max error"]);
    let callers_head = callers.map(|n| format!("{n} callers GFLOPS (×one)"));
    if let Some(h) = &callers_head {
        head.extend(["1 caller GFLOPS", h]);
    }
    let mut rows: Vec<Vec<String>> = vec![head.iter().map(|h| (*h).to_owned()).collect()];
    for c in &r.results {
        let b = &r.backends[c.backend];
        let method = if c.method == c.method_ran {
            c.method.to_string()
        } else {
            format!("{}→{}", c.method, c.method_ran)
        };
        let mut row = vec![
            shape_label(c.shape),
            b.label.clone(),
            method,
            format!("{:.1}", c.best_gflops),
            format!("{:.1}", c.median_gflops),
            format!("{:.3}", c.median_ms),
        ];
        if metal || cuda {
            row.push(c.gpu_median_ms.map_or("-".into(), |g| format!("{g:.3}")));
        }
        if metal {
            row.push(match (b.kind, metal_target(c.shape)) {
                (BackendKind::Metal, Some(t)) => format!("> {t:.0}"),
                _ => "-".into(),
            });
        }
        if cuda {
            match &c.cuda {
                Some(k) => {
                    row.push(format!("{:.1}", k.kernel_gflops));
                    row.push(format!("{:.3}", k.to_device_ms));
                    row.push(format!("{:.3}", k.to_host_ms));
                    row.push(format!(
                        "{}{}",
                        match (k.in_place, k.pinned) {
                            (true, _) => "lent",
                            (false, true) => "pinned",
                            (false, false) => "pageable",
                        },
                        if k.blocks > 1 {
                            format!(" ×{}", k.blocks)
                        } else {
                            String::new()
                        }
                    ));
                }
                None => row.extend(["-".into(), "-".into(), "-".into(), "-".into()]),
            }
        }
        row.push(c.peak_extra_mib.map_or("-".into(), |m| format!("{m:.1}")));
        row.push(format!("{:.1e}", c.max_scaled_error));
        if callers.is_some() {
            let k = c.concurrent.as_ref();
            row.push(k.map_or("-".into(), |k| format!("{:.1}", k.one_caller_gflops)));
            row.push(k.map_or("-".into(), |k| {
                format!("{:.1} ({:.2})", k.gflops, k.ratio_to_one_caller_rounds)
            }));
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for (n, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, &w))| {
                let pad = w - cell.chars().count();
                if i < 3 {
                    format!("{cell}{}", " ".repeat(pad))
                } else {
                    format!("{}{cell}", " ".repeat(pad))
                }
            })
            .collect();
        let _ = writeln!(s, "{}", cells.join("  ").trim_end());
        if n == 0 {
            let _ = writeln!(
                s,
                "{}",
                "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1))
            );
        }
    }
    let _ = writeln!(
        s,
        "Every result was checked against f64 products (whole for small shapes, sampled elements for large) before it was timed."
    );
    s
}

/// The CSV form: a header and one line per case.
pub fn csv(r: &BenchReport) -> String {
    let mut s = String::from(
        "m,k,n,backend,threads,method,method_ran,reps,best_ms,median_ms,best_gflops,median_gflops,gpu_median_ms,target_gflops,peak_extra_mib,matrices_mib,max_scaled_error,callers,callers_gflops,one_caller_gflops,to_device_ms,to_host_ms,gpu_gflops,blocks\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:.4}"));
    for c in &r.results {
        let b = &r.backends[c.backend];
        let target = (b.kind == BackendKind::Metal)
            .then(|| metal_target(c.shape))
            .flatten();
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{:.4},{:.4},{:.3},{:.3},{},{},{},{:.3},{:.3e},{},{},{},{},{},{},{}",
            c.shape.m,
            c.shape.k,
            c.shape.n,
            b.kind,
            b.threads.map_or(String::new(), |t| t.to_string()),
            c.method,
            c.method_ran,
            c.reps,
            c.best_ms,
            c.median_ms,
            c.best_gflops,
            c.median_gflops,
            opt(c.gpu_median_ms),
            opt(target),
            opt(c.peak_extra_mib),
            c.matrices_mib,
            c.max_scaled_error,
            c.concurrent
                .as_ref()
                .map_or(String::new(), |k| k.callers.to_string()),
            opt(c.concurrent.as_ref().map(|k| k.gflops)),
            opt(c.concurrent.as_ref().map(|k| k.one_caller_gflops)),
            opt(c.cuda.map(|k| k.to_device_ms)),
            opt(c.cuda.map(|k| k.to_host_ms)),
            opt(c.cuda.map(|k| k.kernel_gflops)),
            c.cuda.map_or(String::new(), |k| k.blocks.to_string()),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_labels() {
        assert_eq!(metal_target(Shape::square(1024)), Some(500.0));
        assert_eq!(metal_target(Shape::new(1024, 1024, 1)), None);
        assert_eq!(shape_label(Shape::square(64)), "64³");
        assert_eq!(shape_label(Shape::new(1, 2, 3)), "1×2×3");
    }
}
