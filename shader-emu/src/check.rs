//! The static check: the bridge and the shaders agree on kernel names, buffer indices and
//! dispatch geometry. Pure text analysis, so it runs everywhere in milliseconds.

use std::collections::BTreeSet;

use crate::Sources;
use crate::bridge::Bridge;
use crate::geometry::{Geometry, MATMUL_KERNELS};
use crate::msl::{Kernel, parse_dir};

/// What the check found: problems (the check fails when there are any) and notes.
#[derive(Debug, Default)]
pub struct Report {
    /// Each disagreement, one sentence each.
    pub problems: Vec<String>,
    /// Things worth knowing that are not wrong (e.g. a kernel the bridge does not use yet).
    pub notes: Vec<String>,
}

impl Report {
    /// `Ok` with the notes when nothing disagrees, else every problem in one message.
    pub fn into_result(self) -> Result<Vec<String>, String> {
        if self.problems.is_empty() {
            Ok(self.notes)
        } else {
            Err(format!(
                "the shaders and the bridge disagree:\n  - {}",
                self.problems.join("\n  - ")
            ))
        }
    }
}

/// Runs every check on `sources`. An error means a file could not be read or parsed.
pub fn check(sources: &Sources) -> Result<Report, String> {
    let geometry = Geometry::load(&sources.geometry_header())?;
    let bridge = Bridge::load(&sources.bridge(), &geometry)?;
    let kernels = parse_dir(&sources.shaders_dir())?;
    let mut report = Report::default();
    kernel_names(&bridge, &kernels, &mut report);
    buffer_indices(&bridge, &kernels, &mut report);
    bridge_dispatches(&bridge, &geometry, &mut report);
    Ok(report)
}

/// Every kernel the bridge asks for exists, once; matmul kernels it does not use are noted.
fn kernel_names(bridge: &Bridge, kernels: &[Kernel], report: &mut Report) {
    if bridge.kernels.is_empty() {
        report
            .problems
            .push("the bridge asks for no kernel (no @\"matmul_...\" literal)".into());
    }
    let mut seen = BTreeSet::new();
    for k in kernels {
        if !seen.insert(k.name.as_str()) {
            report.problems.push(format!(
                "kernel {} is declared twice (again at {k})",
                k.name
            ));
        }
    }
    let available: Vec<&str> = kernels.iter().map(|k| k.name.as_str()).collect();
    for name in &bridge.kernels {
        if !seen.contains(name.as_str()) {
            report.problems.push(format!(
                "the bridge asks for kernel {name}, which no file in shaders/ declares (declared: {})",
                available.join(", ")
            ));
        }
    }
    for k in kernels {
        if !bridge.kernels.contains(&k.name) {
            report
                .notes
                .push(format!("kernel {k} is not dispatched by the bridge"));
        }
    }
}

/// Each matmul kernel's `[[buffer(n)]]` parameters are exactly the bridge's kBuffer
/// constants, by name and index.
fn buffer_indices(bridge: &Bridge, kernels: &[Kernel], report: &mut Report) {
    if bridge.buffers.is_empty() {
        report.problems.push(
            "the bridge declares no `static const NSUInteger kBufferX = n;` buffer indices".into(),
        );
        return;
    }
    let mut indices = BTreeSet::new();
    for (name, index) in &bridge.buffers {
        if !indices.insert(index) {
            report.problems.push(format!(
                "the bridge binds two buffers at index {index} (kBuffer{name})"
            ));
        }
    }
    for k in kernels
        .iter()
        .filter(|k| bridge.kernels.contains(&k.name) || k.name.starts_with("matmul_"))
    {
        let mut declared = BTreeSet::new();
        for (index, name) in k.buffers() {
            declared.insert(name);
            match bridge.buffers.get(name) {
                None => report.problems.push(format!(
                    "kernel {k} declares {name} [[buffer({index})]], but the bridge has no kBuffer{name}"
                )),
                Some(&bound) if bound != index => report.problems.push(format!(
                    "kernel {k} declares {name} [[buffer({index})]], but the bridge binds kBuffer{name} = {bound}"
                )),
                Some(_) => {}
            }
        }
        for name in bridge.buffers.keys() {
            if !declared.contains(name.as_str()) {
                report.problems.push(format!(
                    "kernel {k} has no parameter {name} for the bridge's kBuffer{name}"
                ));
            }
        }
    }
}

/// The bridge's dispatch calls are exactly the ones the geometry header prescribes for the
/// kernels it uses: same mode, same threads per threadgroup.
fn bridge_dispatches(bridge: &Bridge, geometry: &Geometry, report: &mut Report) {
    let mut expected = Vec::new();
    for name in &bridge.kernels {
        if !MATMUL_KERNELS.contains(&name.as_str()) {
            report.problems.push(format!(
                "the bridge uses kernel {name}, whose dispatch shader-emu does not know \
                 (add it to shader-emu/src/geometry.rs)"
            ));
            continue;
        }
        match geometry.group(name) {
            Ok((mode, group)) => expected.push((name, mode, group)),
            Err(e) => report.problems.push(e),
        }
    }
    for d in &bridge.dispatches {
        if !expected
            .iter()
            .any(|&(_, mode, group)| mode == d.mode && group == d.group)
        {
            let wanted: Vec<String> = expected
                .iter()
                .map(|(n, mode, g)| format!("{n}: {} {:?}", mode.selector(), g))
                .collect();
            report.problems.push(format!(
                "the bridge's {} at line {} uses threadsPerThreadgroup {:?}, which matches no \
                 kernel's geometry in matmul_geometry.h ({})",
                d.mode.selector(),
                d.line,
                d.group,
                wanted.join("; ")
            ));
        }
    }
    for (name, mode, group) in expected {
        if !bridge
            .dispatches
            .iter()
            .any(|d| d.mode == mode && d.group == group)
        {
            report.problems.push(format!(
                "the bridge has no {} with threadsPerThreadgroup {group:?}, which kernel {name} \
                 needs according to matmul_geometry.h",
                mode.selector()
            ));
        }
    }
}
