//! Usage traces: what each workload demanded over time.
//!
//! A trace value is a workload's *total* demand at a moment — CPU in cores and
//! memory in bytes — whatever number of replicas serves it. The engine divides
//! demand among replicas. Readers accept the project's native CSV and the public
//! trace formats platform teams already have exports of: Bitbrains (GWA-T-12),
//! PlanetLab, Alibaba 2018 `container_usage` and Google 2019 `instance_usage`.
//!
//! Every reader reports bad input with the source's name, the line number and
//! the field, and keeps nothing from a file that fails.

use flate2::read::GzDecoder;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// One observation of a workload's demand.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Seconds (epoch seconds, or seconds from the trace's start).
    pub t: i64,
    /// CPU demand in cores.
    pub cpu_cores: f64,
    /// Memory demand in bytes.
    pub memory_bytes: f64,
}

/// The demand of one workload over time, samples sorted by time.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadTrace {
    /// The workload's name, unique within a trace.
    pub name: String,
    /// Samples in strictly increasing time order.
    pub samples: Vec<Sample>,
}

/// Several workloads' demand.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    /// The workloads, in name order.
    pub workloads: Vec<WorkloadTrace>,
}

/// A trace could not be read. The message names the source, line and field.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be opened or read.
    #[error("{source_name}: {error}")]
    Io {
        /// The file.
        source_name: String,
        /// What the OS said.
        #[source]
        error: std::io::Error,
    },
    /// A row or the header is malformed.
    #[error("{source_name}:{line}: {message}")]
    Malformed {
        /// The file (or a name given for a stream).
        source_name: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The input held no samples at all.
    #[error("{source_name}: no samples")]
    Empty {
        /// The file.
        source_name: String,
    },
}

/// The trace formats Tailor reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TraceFormat {
    /// `timestamp,workload,cpu_cores,memory_bytes` with a header row.
    Native,
    /// Bitbrains GWA-T-12: one VM per file, `;\t` separated, header row.
    Bitbrains,
    /// PlanetLab: one VM per file, one CPU utilisation percentage per line.
    Planetlab,
    /// Alibaba cluster trace 2018, `container_usage.csv` (no header).
    Alibaba2018,
    /// Google cluster data 2019, `instance_usage` exported to CSV with a header.
    Google2019,
}

fn malformed(source_name: &str, line: usize, message: impl Into<String>) -> TraceError {
    TraceError::Malformed {
        source_name: source_name.to_owned(),
        line,
        message: message.into(),
    }
}

/// Parses a finite, non-negative number from a named field.
fn number(source_name: &str, line: usize, field: &str, raw: &str) -> Result<f64, TraceError> {
    let raw = raw.trim();
    let value: f64 = raw.parse().map_err(|_| {
        malformed(
            source_name,
            line,
            format!("field `{field}`: `{raw}` is not a number"),
        )
    })?;
    if !value.is_finite() || value < 0.0 {
        return Err(malformed(
            source_name,
            line,
            format!("field `{field}`: `{raw}` must be a finite, non-negative number"),
        ));
    }
    Ok(value)
}

fn integer(source_name: &str, line: usize, field: &str, raw: &str) -> Result<i64, TraceError> {
    let raw = raw.trim();
    raw.parse().map_err(|_| {
        malformed(
            source_name,
            line,
            format!("field `{field}`: `{raw}` is not a whole number"),
        )
    })
}

/// The field at `index` of a split row, or an error naming the missing column.
fn column<'a>(
    source_name: &str,
    line: usize,
    fields: &[&'a str],
    index: usize,
    name: &str,
) -> Result<&'a str, TraceError> {
    fields.get(index).copied().ok_or_else(|| {
        malformed(
            source_name,
            line,
            format!("row has {} fields, missing `{name}`", fields.len()),
        )
    })
}

/// Opens a file, transparently decompressing `.gz`.
pub fn open(path: &Path) -> Result<Box<dyn BufRead>, TraceError> {
    let file = File::open(path).map_err(|error| TraceError::Io {
        source_name: path.display().to_string(),
        error,
    })?;
    if path.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(BufReader::new(GzDecoder::new(file))))
    } else {
        Ok(Box::new(BufReader::new(file)))
    }
}

/// Iterates lines with 1-based numbers, turning read errors into `TraceError`.
fn lines<'a>(
    source_name: &'a str,
    reader: impl BufRead + 'a,
) -> impl Iterator<Item = Result<(usize, String), TraceError>> + 'a {
    reader.lines().enumerate().map(move |(i, l)| {
        l.map(|l| (i + 1, l)).map_err(|error| TraceError::Io {
            source_name: source_name.to_owned(),
            error,
        })
    })
}

/// Collects samples per workload, checking that times do not repeat.
#[derive(Default)]
struct Builder {
    workloads: BTreeMap<String, BTreeMap<i64, (usize, Sample)>>,
}

impl Builder {
    fn push(
        &mut self,
        source_name: &str,
        line: usize,
        workload: &str,
        sample: Sample,
    ) -> Result<(), TraceError> {
        let samples = self.workloads.entry(workload.to_owned()).or_default();
        if let Some((first_line, _)) = samples.get(&sample.t) {
            return Err(malformed(
                source_name,
                line,
                format!(
                    "workload `{workload}` has a second sample at time {} (first on line {first_line})",
                    sample.t
                ),
            ));
        }
        samples.insert(sample.t, (line, sample));
        Ok(())
    }

    /// Adds a sample; one at the same time as an earlier one replaces it
    /// (Bitbrains monitors sometimes report an interval twice, the later row
    /// being the corrected one; e.g. `20.csv.gz` lines 117-118).
    fn replace(&mut self, workload: &str, line: usize, sample: Sample) {
        let samples = self.workloads.entry(workload.to_owned()).or_default();
        samples.insert(sample.t, (line, sample));
    }

    /// Adds to an existing sample at the same time (for formats that report a
    /// workload's instances separately).
    fn accumulate(&mut self, workload: &str, line: usize, sample: Sample) {
        let samples = self.workloads.entry(workload.to_owned()).or_default();
        let entry = samples.entry(sample.t).or_insert((
            line,
            Sample {
                t: sample.t,
                cpu_cores: 0.0,
                memory_bytes: 0.0,
            },
        ));
        entry.1.cpu_cores += sample.cpu_cores;
        entry.1.memory_bytes += sample.memory_bytes;
    }

    fn finish(self, source_name: &str) -> Result<Trace, TraceError> {
        let workloads: Vec<WorkloadTrace> = self
            .workloads
            .into_iter()
            .map(|(name, samples)| WorkloadTrace {
                name,
                samples: samples.into_values().map(|(_, s)| s).collect(),
            })
            .collect();
        if workloads.iter().all(|w| w.samples.is_empty()) {
            return Err(TraceError::Empty {
                source_name: source_name.to_owned(),
            });
        }
        Ok(Trace { workloads })
    }
}

/// The native columns, in any order.
const NATIVE_COLUMNS: [&str; 4] = ["timestamp", "workload", "cpu_cores", "memory_bytes"];

/// Reads the native CSV format.
///
/// ```text
/// # Lines starting with '#' are comments.
/// timestamp,workload,cpu_cores,memory_bytes
/// 0,web,0.25,104857600
/// 300,web,0.31,104857600
/// ```
///
/// `timestamp` is whole seconds (epoch or relative), `cpu_cores` a decimal
/// number of cores, `memory_bytes` bytes. Columns may come in any order; extra
/// columns are ignored. Each (workload, timestamp) appears once.
pub fn read_native(source_name: &str, reader: impl BufRead) -> Result<Trace, TraceError> {
    let mut columns: Option<[usize; 4]> = None;
    let mut builder = Builder::default();
    for item in lines(source_name, reader) {
        let (line, text) = item?;
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = text.split(',').map(str::trim).collect();
        let Some(idx) = columns else {
            let mut idx = [0usize; 4];
            for (slot, name) in idx.iter_mut().zip(NATIVE_COLUMNS) {
                *slot = fields.iter().position(|f| *f == name).ok_or_else(|| {
                    malformed(
                        source_name,
                        line,
                        format!(
                            "header lacks column `{name}` (expected {})",
                            NATIVE_COLUMNS.join(",")
                        ),
                    )
                })?;
            }
            columns = Some(idx);
            continue;
        };
        let field = |i: usize, name: &str| column(source_name, line, &fields, idx[i], name);
        let t = integer(source_name, line, "timestamp", field(0, "timestamp")?)?;
        let workload = field(1, "workload")?;
        if workload.is_empty() {
            return Err(malformed(source_name, line, "field `workload` is empty"));
        }
        let cpu_cores = number(source_name, line, "cpu_cores", field(2, "cpu_cores")?)?;
        let memory_bytes = number(source_name, line, "memory_bytes", field(3, "memory_bytes")?)?;
        builder.push(
            source_name,
            line,
            workload,
            Sample {
                t,
                cpu_cores,
                memory_bytes,
            },
        )?;
    }
    if columns.is_none() {
        return Err(TraceError::Empty {
            source_name: source_name.to_owned(),
        });
    }
    builder.finish(source_name)
}

/// Writes a trace in the native CSV format (the inverse of [`read_native`]).
pub fn write_native(trace: &Trace, out: &mut impl std::io::Write) -> std::io::Result<()> {
    writeln!(out, "{}", NATIVE_COLUMNS.join(","))?;
    for w in &trace.workloads {
        for s in &w.samples {
            writeln!(out, "{},{},{},{}", s.t, w.name, s.cpu_cores, s.memory_bytes)?;
        }
    }
    Ok(())
}

/// Reads one Bitbrains GWA-T-12 VM file as the workload `name`.
///
/// Columns are found by their header names: `Timestamp [ms]` (epoch seconds,
/// despite its name), `CPU cores`, `CPU usage [%]` and `Memory usage [KB]`.
/// CPU demand is usage% × cores; memory is KB × 1024.
pub fn read_bitbrains(
    source_name: &str,
    name: &str,
    reader: impl BufRead,
) -> Result<WorkloadTrace, TraceError> {
    const WANTED: [&str; 4] = [
        "Timestamp [ms]",
        "CPU cores",
        "CPU usage [%]",
        "Memory usage [KB]",
    ];
    let mut columns: Option<[usize; 4]> = None;
    let mut builder = Builder::default();
    for item in lines(source_name, reader) {
        let (line, text) = item?;
        if text.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = text.split(';').map(str::trim).collect();
        let Some(idx) = columns else {
            let mut idx = [0usize; 4];
            for (slot, wanted) in idx.iter_mut().zip(WANTED) {
                *slot = fields.iter().position(|f| *f == wanted).ok_or_else(|| {
                    malformed(
                        source_name,
                        line,
                        format!("header lacks the Bitbrains column `{wanted}`"),
                    )
                })?;
            }
            columns = Some(idx);
            continue;
        };
        let get = |i: usize| column(source_name, line, &fields, idx[i], WANTED[i]);
        let t = integer(source_name, line, WANTED[0], get(0)?)?;
        let cores = number(source_name, line, WANTED[1], get(1)?)?;
        let pct = number(source_name, line, WANTED[2], get(2)?)?;
        let kb = number(source_name, line, WANTED[3], get(3)?)?;
        builder.replace(
            name,
            line,
            Sample {
                t,
                cpu_cores: pct / 100.0 * cores,
                memory_bytes: kb * 1024.0,
            },
        );
    }
    let mut trace = builder.finish(source_name)?;
    trace.workloads.pop().ok_or_else(|| TraceError::Empty {
        source_name: source_name.to_owned(),
    })
}

/// Reads Bitbrains VM files `1.csv.gz`, `2.csv.gz`, … from a directory, the
/// first `limit` of them in numeric order (all when `None`). Workloads are named
/// `vm-<n>`.
pub fn read_bitbrains_dir(dir: &Path, limit: Option<usize>) -> Result<Trace, TraceError> {
    let source_name = dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|error| TraceError::Io {
        source_name: source_name.clone(),
        error,
    })?;
    let mut files: Vec<(u64, std::path::PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| TraceError::Io {
            source_name: source_name.clone(),
            error,
        })?;
        let path = entry.path();
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let stem = file_name
            .strip_suffix(".csv.gz")
            .or_else(|| file_name.strip_suffix(".csv"));
        if let Some(n) = stem.and_then(|s| s.parse::<u64>().ok()) {
            files.push((n, path));
        }
    }
    files.sort();
    files.truncate(limit.unwrap_or(usize::MAX));
    if files.is_empty() {
        return Err(TraceError::Empty { source_name });
    }
    let mut workloads = Vec::with_capacity(files.len());
    for (n, path) in files {
        let name = format!("vm-{n}");
        workloads.push(read_bitbrains(
            &path.display().to_string(),
            &name,
            open(&path)?,
        )?);
    }
    Ok(Trace { workloads })
}

/// How to turn a PlanetLab file (CPU percentages only) into demand.
#[derive(Clone, Copy, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PlanetLabOptions {
    /// vCPUs the percentage refers to.
    pub vcpus: f64,
    /// Memory demand to assume, in bytes: PlanetLab records no memory.
    pub memory_bytes: f64,
    /// Time of the first line, in seconds.
    pub start: i64,
    /// Seconds between lines (PlanetLab samples every 300 s).
    pub step_seconds: i64,
}

impl Default for PlanetLabOptions {
    fn default() -> Self {
        PlanetLabOptions {
            vcpus: 1.0,
            memory_bytes: 512.0 * 1024.0 * 1024.0,
            start: 0,
            step_seconds: 300,
        }
    }
}

/// Reads one PlanetLab VM file: one CPU utilisation percentage (0–100) per line.
pub fn read_planetlab(
    source_name: &str,
    name: &str,
    reader: impl BufRead,
    options: PlanetLabOptions,
) -> Result<WorkloadTrace, TraceError> {
    let mut builder = Builder::default();
    let mut index: i64 = 0;
    for item in lines(source_name, reader) {
        let (line, text) = item?;
        if text.trim().is_empty() {
            continue;
        }
        let pct = number(source_name, line, "cpu utilisation %", &text)?;
        if pct > 100.0 {
            return Err(malformed(
                source_name,
                line,
                format!("field `cpu utilisation %`: {pct} is above 100"),
            ));
        }
        builder.push(
            source_name,
            line,
            name,
            Sample {
                t: options.start + index * options.step_seconds,
                cpu_cores: pct / 100.0 * options.vcpus,
                memory_bytes: options.memory_bytes,
            },
        )?;
        index += 1;
    }
    let mut trace = builder.finish(source_name)?;
    trace.workloads.pop().ok_or_else(|| TraceError::Empty {
        source_name: source_name.to_owned(),
    })
}

/// How to scale the Alibaba 2018 trace's percentages into cores and bytes.
///
/// `container_usage.csv` gives CPU and memory as percentages of the container's
/// allocation; the allocation lives in `container_meta.csv` (`cpu_request`, 100
/// = one core). Give the allocation here.
#[derive(Clone, Copy, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AlibabaOptions {
    /// Cores that 100% CPU stands for.
    pub cpu_cores: f64,
    /// Bytes that 100% memory stands for.
    pub memory_bytes: f64,
}

/// Reads Alibaba 2018 `container_usage.csv`: `container_id, machine_id,
/// time_stamp, cpu_util_percent, mem_util_percent, …` with no header. Each
/// container is a workload. Rows whose CPU or memory field is empty (the trace
/// has such gaps) are skipped; anything else malformed is an error.
pub fn read_alibaba_2018(
    source_name: &str,
    reader: impl BufRead,
    options: AlibabaOptions,
) -> Result<Trace, TraceError> {
    let mut builder = Builder::default();
    for item in lines(source_name, reader) {
        let (line, text) = item?;
        if text.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = text.split(',').map(str::trim).collect();
        if fields.len() < 5 {
            return Err(malformed(
                source_name,
                line,
                format!(
                    "row has {} fields; container_usage rows have at least 5 (container_id, machine_id, time_stamp, cpu_util_percent, mem_util_percent)",
                    fields.len()
                ),
            ));
        }
        if fields[0].is_empty() {
            return Err(malformed(
                source_name,
                line,
                "field `container_id` is empty",
            ));
        }
        if fields[3].is_empty() || fields[4].is_empty() {
            continue;
        }
        let t = integer(source_name, line, "time_stamp", fields[2])?;
        let cpu = number(source_name, line, "cpu_util_percent", fields[3])?;
        let mem = number(source_name, line, "mem_util_percent", fields[4])?;
        builder.push(
            source_name,
            line,
            fields[0],
            Sample {
                t,
                cpu_cores: cpu / 100.0 * options.cpu_cores,
                memory_bytes: mem / 100.0 * options.memory_bytes,
            },
        )?;
    }
    builder.finish(source_name)
}

/// How to scale the Google 2019 trace's normalised units.
///
/// The trace reports usage in units normalised to the largest machine (NCU
/// and NMU); say what one unit is in cores and bytes.
#[derive(Clone, Copy, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GoogleOptions {
    /// Cores per normalised CPU unit.
    pub cores_per_unit: f64,
    /// Bytes per normalised memory unit.
    pub bytes_per_unit: f64,
}

/// Reads Google cluster data 2019 `instance_usage` exported to CSV with a
/// header. Needed columns: `start_time` (microseconds), `collection_id`, and
/// average usage as `average_usage.cpus`/`average_usage.memory` (or with `_`
/// in place of `.`, as BigQuery's CSV export names flattened fields). A
/// collection is a workload; its instances' usage in the same window is summed.
pub fn read_google_2019(
    source_name: &str,
    reader: impl BufRead,
    options: GoogleOptions,
) -> Result<Trace, TraceError> {
    let find = |fields: &[&str], names: &[&str]| {
        fields
            .iter()
            .position(|f| names.iter().any(|n| f.trim_matches('"') == *n))
    };
    let mut columns: Option<[usize; 4]> = None;
    let mut builder = Builder::default();
    for item in lines(source_name, reader) {
        let (line, text) = item?;
        if text.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = text
            .split(',')
            .map(|f| f.trim().trim_matches('"'))
            .collect();
        let Some(idx) = columns else {
            let wanted: [&[&str]; 4] = [
                &["start_time"],
                &["collection_id"],
                &["average_usage.cpus", "average_usage_cpus"],
                &["average_usage.memory", "average_usage_memory"],
            ];
            let mut idx = [0usize; 4];
            for (slot, names) in idx.iter_mut().zip(wanted) {
                *slot = find(&fields, names).ok_or_else(|| {
                    malformed(
                        source_name,
                        line,
                        format!("header lacks the instance_usage column `{}`", names[0]),
                    )
                })?;
            }
            columns = Some(idx);
            continue;
        };
        let get = |i: usize, name: &str| column(source_name, line, &fields, idx[i], name);
        let micros = integer(source_name, line, "start_time", get(0, "start_time")?)?;
        let collection = get(1, "collection_id")?;
        if collection.is_empty() {
            return Err(malformed(
                source_name,
                line,
                "field `collection_id` is empty",
            ));
        }
        let cpu = number(
            source_name,
            line,
            "average_usage.cpus",
            get(2, "average_usage.cpus")?,
        )?;
        let mem = number(
            source_name,
            line,
            "average_usage.memory",
            get(3, "average_usage.memory")?,
        )?;
        builder.accumulate(
            collection,
            line,
            Sample {
                t: micros / 1_000_000,
                cpu_cores: cpu * options.cores_per_unit,
                memory_bytes: mem * options.bytes_per_unit,
            },
        );
    }
    builder.finish(source_name)
}

impl Trace {
    /// The earliest sample time over all workloads.
    #[must_use]
    pub fn start(&self) -> Option<i64> {
        self.workloads
            .iter()
            .filter_map(|w| w.samples.first().map(|s| s.t))
            .min()
    }

    /// The latest sample time over all workloads.
    #[must_use]
    pub fn end(&self) -> Option<i64> {
        self.workloads
            .iter()
            .filter_map(|w| w.samples.last().map(|s| s.t))
            .max()
    }
}

impl WorkloadTrace {
    /// Demand on a regular grid: `steps` values at `start + i × step`, each the
    /// most recent sample at or before that time (the first sample before the
    /// trace begins), as (cores, bytes).
    #[must_use]
    pub fn resample(&self, start: i64, step: i64, steps: usize) -> Vec<(f64, f64)> {
        let mut out = Vec::with_capacity(steps);
        let mut next = 0usize;
        let mut current = self
            .samples
            .first()
            .map_or((0.0, 0.0), |s| (s.cpu_cores, s.memory_bytes));
        let mut t = start;
        for _ in 0..steps {
            while let Some(s) = self.samples.get(next) {
                if s.t > t {
                    break;
                }
                current = (s.cpu_cores, s.memory_bytes);
                next += 1;
            }
            out.push(current);
            t = t.saturating_add(step);
        }
        out
    }
}

/// Reads any supported trace file. Single-VM formats name the workload after
/// the file's stem.
pub fn read_file(
    path: &Path,
    format: TraceFormat,
    planetlab: PlanetLabOptions,
    alibaba: Option<AlibabaOptions>,
    google: Option<GoogleOptions>,
) -> Result<Trace, TraceError> {
    let source_name = path.display().to_string();
    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem.split('.').next().unwrap_or_default().to_owned();
    let reader = open(path)?;
    let missing = |what: &str| {
        malformed(
            &source_name,
            1,
            format!("the {what} format needs its scaling options (see docs/simulator.md)"),
        )
    };
    match format {
        TraceFormat::Native => read_native(&source_name, reader),
        TraceFormat::Bitbrains => Ok(Trace {
            workloads: vec![read_bitbrains(&source_name, &stem, reader)?],
        }),
        TraceFormat::Planetlab => Ok(Trace {
            workloads: vec![read_planetlab(&source_name, &stem, reader, planetlab)?],
        }),
        TraceFormat::Alibaba2018 => read_alibaba_2018(
            &source_name,
            reader,
            alibaba.ok_or_else(|| missing("alibaba-2018"))?,
        ),
        TraceFormat::Google2019 => read_google_2019(
            &source_name,
            reader,
            google.ok_or_else(|| missing("google-2019"))?,
        ),
    }
}

/// Reads a whole stream into memory; for callers holding `Read` not `BufRead`.
pub fn buffered(reader: impl Read) -> impl BufRead {
    BufReader::new(reader)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn native(text: &str) -> Result<Trace, TraceError> {
        read_native("t.csv", text.as_bytes())
    }

    #[test]
    fn native_reads_and_sorts_by_time() {
        let t = native(
            "# demo\ntimestamp,workload,cpu_cores,memory_bytes\n300,web,0.5,2048\n0,web,0.25,1024\n0,db,1,4096\n",
        )
        .unwrap();
        assert_eq!(t.workloads.len(), 2);
        assert_eq!(t.workloads[0].name, "db");
        let web = &t.workloads[1];
        assert_eq!(
            web.samples.iter().map(|s| s.t).collect::<Vec<_>>(),
            [0, 300]
        );
        assert!((web.samples[1].cpu_cores - 0.5).abs() < 1e-12);
        assert_eq!(t.start(), Some(0));
        assert_eq!(t.end(), Some(300));
    }

    #[test]
    fn native_columns_in_any_order() {
        let t =
            native("workload,memory_bytes,timestamp,cpu_cores,extra\nweb,10,5,1.5,x\n").unwrap();
        assert_eq!(
            t.workloads[0].samples[0],
            Sample {
                t: 5,
                cpu_cores: 1.5,
                memory_bytes: 10.0
            }
        );
    }

    #[rstest]
    #[case(
        "timestamp,workload,cpu\n",
        "t.csv:1: header lacks column `cpu_cores` (expected timestamp,workload,cpu_cores,memory_bytes)"
    )]
    #[case(
        "timestamp,workload,cpu_cores,memory_bytes\n0,web,abc,1\n",
        "t.csv:2: field `cpu_cores`: `abc` is not a number"
    )]
    #[case(
        "timestamp,workload,cpu_cores,memory_bytes\n0,web,1,-5\n",
        "t.csv:2: field `memory_bytes`: `-5` must be a finite, non-negative number"
    )]
    #[case(
        "timestamp,workload,cpu_cores,memory_bytes\n0,web,NaN,5\n",
        "t.csv:2: field `cpu_cores`: `NaN` must be a finite, non-negative number"
    )]
    #[case(
        "timestamp,workload,cpu_cores,memory_bytes\n1.5,web,1,5\n",
        "t.csv:2: field `timestamp`: `1.5` is not a whole number"
    )]
    #[case(
        "timestamp,workload,cpu_cores,memory_bytes\n0,web,1\n",
        "t.csv:2: row has 3 fields, missing `memory_bytes`"
    )]
    #[case(
        "timestamp,workload,cpu_cores,memory_bytes\n0,,1,1\n",
        "t.csv:2: field `workload` is empty"
    )]
    #[case(
        "timestamp,workload,cpu_cores,memory_bytes\n0,web,1,1\n\n0,web,2,2\n",
        "t.csv:4: workload `web` has a second sample at time 0 (first on line 2)"
    )]
    #[case("timestamp,workload,cpu_cores,memory_bytes\n", "t.csv: no samples")]
    #[case("", "t.csv: no samples")]
    fn native_errors_name_line_and_field(#[case] text: &str, #[case] message: &str) {
        assert_eq!(native(text).unwrap_err().to_string(), message);
    }

    #[test]
    fn native_round_trips() {
        let t =
            native("timestamp,workload,cpu_cores,memory_bytes\n0,a,0.125,1\n60,a,2,3\n0,b,1,1\n")
                .unwrap();
        let mut out = Vec::new();
        write_native(&t, &mut out).unwrap();
        assert_eq!(read_native("again", out.as_slice()).unwrap(), t);
    }

    const BITBRAINS: &str = "Timestamp [ms];\tCPU cores;\tCPU capacity provisioned [MHZ];\tCPU usage [MHZ];\tCPU usage [%];\tMemory capacity provisioned [KB];\tMemory usage [KB];\tDisk read throughput [KB/s]\n\
1375308176;\t2;\t5851.9989;\t747.1051929;\t12.5;\t8388608.0;\t1308620.0;\t0.0\n\
1375308476;\t2;\t5851.9989;\t672.9798734999999;\t50;\t8388608.0;\t1024;\t0.0\n";

    #[test]
    fn bitbrains_converts_units() {
        let w = read_bitbrains("1.csv", "vm-1", BITBRAINS.as_bytes()).unwrap();
        assert_eq!(w.name, "vm-1");
        assert_eq!(w.samples.len(), 2);
        assert!((w.samples[0].cpu_cores - 0.25).abs() < 1e-12);
        assert!((w.samples[0].memory_bytes - 1_308_620.0 * 1024.0).abs() < 1e-6);
        assert!((w.samples[1].cpu_cores - 1.0).abs() < 1e-12);
        assert_eq!(w.samples[1].t, 1_375_308_476);
    }

    #[test]
    fn bitbrains_errors() {
        let bad = BITBRAINS.replace("50;", "fifty;");
        let err = read_bitbrains("1.csv", "vm-1", bad.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "1.csv:3: field `CPU usage [%]`: `fifty` is not a number"
        );
        let err = read_bitbrains("1.csv", "vm-1", "a;\tb\n1;\t2\n".as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "1.csv:1: header lacks the Bitbrains column `Timestamp [ms]`"
        );
    }

    #[test]
    fn bitbrains_repeated_interval_keeps_the_later_row() {
        let text = "Timestamp [ms];\tCPU cores;\tCPU usage [%];\tMemory usage [KB]\n\
                    0;\t2;\t50;\t1\n300;\t2;\t10;\t1\n300;\t2;\t20;\t2\n600;\t2;\t0;\t1\n";
        let w = read_bitbrains("x.csv", "vm", text.as_bytes()).unwrap();
        assert_eq!(w.samples.len(), 3);
        assert!((w.samples[1].cpu_cores - 0.4).abs() < 1e-12);
        assert!((w.samples[1].memory_bytes - 2048.0).abs() < 1e-9);
    }

    #[test]
    fn bitbrains_real_file_with_a_repeated_interval() {
        let path = crate::shared_data_dir().join("traces/bitbrains-rnd-2013-08/20.csv.gz");
        let trace = read_bitbrains_dir(path.parent().unwrap(), Some(20)).unwrap();
        let vm20 = &trace.workloads[19];
        assert_eq!(vm20.name, "vm-20");
        assert!(vm20.samples.windows(2).all(|p| p[0].t < p[1].t));
        let at = vm20.samples.iter().find(|s| s.t == 1_375_342_679).unwrap();
        assert!((at.memory_bytes - 272_627.6 * 1024.0).abs() < 1e-3);
    }

    #[test]
    fn bitbrains_real_files() {
        let dir = crate::shared_data_dir().join("traces/bitbrains-rnd-2013-08");
        let trace = read_bitbrains_dir(&dir, Some(3)).unwrap();
        assert_eq!(
            trace
                .workloads
                .iter()
                .map(|w| w.name.as_str())
                .collect::<Vec<_>>(),
            ["vm-1", "vm-2", "vm-3"]
        );
        let vm1 = &trace.workloads[0];
        // One month of 5-minute samples, as the shared data README describes.
        assert_eq!(vm1.samples.len(), 8627);
        assert_eq!(vm1.samples[0].t, 1_375_308_176);
        assert!((vm1.samples[0].cpu_cores - 2.0 * 12.766_666_666_666_667 / 100.0).abs() < 1e-9);
        assert!(vm1.samples.windows(2).all(|p| p[0].t < p[1].t));
    }

    #[test]
    fn planetlab() {
        let opts = PlanetLabOptions {
            vcpus: 2.0,
            memory_bytes: 100.0,
            start: 1000,
            step_seconds: 300,
        };
        let w = read_planetlab("p", "vm", "10\n50\n\n100\n".as_bytes(), opts).unwrap();
        assert_eq!(
            w.samples.iter().map(|s| s.t).collect::<Vec<_>>(),
            [1000, 1300, 1600]
        );
        assert!((w.samples[1].cpu_cores - 1.0).abs() < 1e-12);
        let err = read_planetlab("p", "vm", "10\n150\n".as_bytes(), opts).unwrap_err();
        assert_eq!(
            err.to_string(),
            "p:2: field `cpu utilisation %`: 150 is above 100"
        );
    }

    #[test]
    fn alibaba() {
        let opts = AlibabaOptions {
            cpu_cores: 4.0,
            memory_bytes: 1000.0,
        };
        let text = "c_1,m_1,10,50,20,1.2,,,,,\nc_1,m_1,20,,20,,,,,,\nc_2,m_2,10,25,10\n";
        let t = read_alibaba_2018("u.csv", text.as_bytes(), opts).unwrap();
        assert_eq!(t.workloads.len(), 2);
        assert_eq!(
            t.workloads[0].samples.len(),
            1,
            "row with empty cpu is skipped"
        );
        assert!((t.workloads[0].samples[0].cpu_cores - 2.0).abs() < 1e-12);
        assert!((t.workloads[1].samples[0].memory_bytes - 100.0).abs() < 1e-12);
        let err = read_alibaba_2018("u.csv", "c_1,m_1,x,1,1\n".as_bytes(), opts).unwrap_err();
        assert_eq!(
            err.to_string(),
            "u.csv:1: field `time_stamp`: `x` is not a whole number"
        );
        let err = read_alibaba_2018("u.csv", "c_1,m_1\n".as_bytes(), opts).unwrap_err();
        assert!(err.to_string().starts_with("u.csv:1: row has 2 fields"));
    }

    #[test]
    fn google_sums_instances_of_a_collection() {
        let opts = GoogleOptions {
            cores_per_unit: 100.0,
            bytes_per_unit: 1e9,
        };
        let text = "start_time,end_time,collection_id,instance_index,average_usage_cpus,average_usage_memory\n\
600000000,900000000,42,0,0.01,0.002\n\
600000000,900000000,42,1,0.02,0.001\n\
900000000,1200000000,42,0,0.03,0.001\n";
        let t = read_google_2019("g.csv", text.as_bytes(), opts).unwrap();
        let w = &t.workloads[0];
        assert_eq!(w.name, "42");
        assert_eq!(w.samples.len(), 2);
        assert_eq!(w.samples[0].t, 600);
        assert!((w.samples[0].cpu_cores - 3.0).abs() < 1e-9);
        assert!((w.samples[0].memory_bytes - 3e6).abs() < 1e-3);
        let err =
            read_google_2019("g.csv", "start_time,collection_id\n".as_bytes(), opts).unwrap_err();
        assert_eq!(
            err.to_string(),
            "g.csv:1: header lacks the instance_usage column `average_usage.cpus`"
        );
    }

    #[test]
    fn resample_holds_the_latest_value() {
        let w = WorkloadTrace {
            name: "w".into(),
            samples: vec![
                Sample {
                    t: 10,
                    cpu_cores: 1.0,
                    memory_bytes: 1.0,
                },
                Sample {
                    t: 25,
                    cpu_cores: 2.0,
                    memory_bytes: 2.0,
                },
            ],
        };
        let r: Vec<f64> = w.resample(0, 10, 5).into_iter().map(|(c, _)| c).collect();
        assert_eq!(r, [1.0, 1.0, 1.0, 2.0, 2.0]);
    }
}
