//! A run's results: the table printed at its end and the JSON figures written beside it. A row
//! and its figure go in together ([`Report::add`], [`Report::latency`]).

use chat_testkit::Error;
use serde_json::{json, Map, Value};

use crate::measure::{percentile, round3};

/// Where a row's figure goes in the JSON.
pub enum Figure<'a> {
    /// Nowhere: the row shows what another figure holds (a process under its level, a second
    /// reading of one measurement, a measurement not made).
    None,
    /// Under its own key.
    Field(&'a str, Value),
    /// Appended to the list under a key (one entry a level measured).
    Entry(&'a str, Value),
}

pub struct Report {
    title: String,
    rows: Vec<(String, String, String)>,
    figures: Map<String, Value>,
}

/// The figure of a latency's samples: p50, p99 and how many.
pub fn stats(samples: &[f64]) -> Value {
    json!({"p50": round3(percentile(samples, 50.0)), "p99": round3(percentile(samples, 99.0)), "samples": samples.len()})
}

/// How a latency reads in the table.
pub fn p50_p99(samples: &[f64]) -> String {
    format!("p50 {:.3} / p99 {:.3} ms", percentile(samples, 50.0), percentile(samples, 99.0))
}

impl Report {
    pub fn new(title: &str) -> Report {
        Report { title: title.to_string(), rows: Vec::new(), figures: Map::new() }
    }

    /// A row (what, the figure as read, a note) and its figure.
    pub fn add(&mut self, name: impl Into<String>, value: impl Into<String>, note: impl Into<String>, figure: Figure) {
        self.rows.push((name.into(), value.into(), note.into()));
        match figure {
            Figure::None => {}
            Figure::Field(key, value) => self.figure(key, value),
            Figure::Entry(key, value) => {
                let list = self.figures.entry(key).or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(list) = list {
                    list.push(value);
                }
            }
        }
    }

    /// A latency: its p50 and p99 in the table, its [`stats`] under `key`.
    pub fn latency(&mut self, name: &str, samples: &[f64], note: &str, key: &str) {
        self.add(name, p50_p99(samples), note, Figure::Field(key, stats(samples)));
    }

    /// A row for each process of [`crate::measure::Watch::stop`]'s figures (which the caller
    /// puts where they belong).
    pub fn processes(&mut self, processes: &[Value]) {
        for process in processes {
            self.add(
                format!("  {}", process["process"].as_str().unwrap_or_default()),
                format!("{}% CPU", process["cpu_percent_of_one_core"]),
                format!("peak RSS {} MiB", process["peak_rss_mib"]),
                Figure::None,
            );
        }
    }

    /// A figure with no row of its own (what the run was).
    pub fn figure(&mut self, key: &str, value: Value) {
        self.figures.insert(key.to_string(), value);
    }

    /// Prints the table, writes the figures to `path` and says so.
    pub fn finish(self, path: &str) -> Result<(), Error> {
        let w0 = self.rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
        let w1 = self.rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
        println!("\n{}", self.title);
        println!("{}", "-".repeat(w0 + w1 + 50));
        for (a, b, c) in &self.rows {
            println!("{a:<w0$}  {b:<w1$}  {c}");
        }
        if let Some(dir) = std::path::Path::new(path).parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&Value::Object(self.figures))?)?;
        println!("figures written to {path}");
        Ok(())
    }
}
