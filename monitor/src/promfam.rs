//! Building Prometheus metric families by hand, for collectors that read
//! kernel maps at scrape time and so have no client-library metric objects.

use prometheus::{
    core::Desc,
    proto::{self, MetricFamily, MetricType},
};

pub struct Family {
    family: MetricFamily,
}

impl Family {
    pub fn counter(name: &str, help: &str) -> Self {
        Self::new(name, help, MetricType::COUNTER)
    }

    pub fn gauge(name: &str, help: &str) -> Self {
        Self::new(name, help, MetricType::GAUGE)
    }

    pub fn histogram(name: &str, help: &str) -> Self {
        Self::new(name, help, MetricType::HISTOGRAM)
    }

    fn new(name: &str, help: &str, kind: MetricType) -> Self {
        let mut family = MetricFamily::default();
        family.set_name(name.to_string());
        family.set_help(help.to_string());
        family.set_field_type(kind);
        Self { family }
    }

    fn metric(labels: &[(&str, &str)]) -> proto::Metric {
        let mut metric = proto::Metric::default();
        let pairs = labels
            .iter()
            .map(|(name, value)| {
                let mut pair = proto::LabelPair::default();
                pair.set_name((*name).to_string());
                pair.set_value((*value).to_string());
                pair
            })
            .collect();
        metric.set_label(pairs);
        metric
    }

    /// Adds a counter or gauge sample.
    pub fn add(&mut self, labels: &[(&str, &str)], value: f64) {
        let mut metric = Self::metric(labels);
        if self.family.get_field_type() == MetricType::GAUGE {
            let mut gauge = proto::Gauge::default();
            gauge.set_value(value);
            metric.set_gauge(gauge);
        } else {
            let mut counter = proto::Counter::default();
            counter.set_value(value);
            metric.set_counter(counter);
        }
        self.family.mut_metric().push(metric);
    }

    /// Adds a histogram from per-bucket (not cumulative) counts in
    /// nanoseconds: one count per bound plus the `+Inf` one.
    pub fn add_histogram(
        &mut self,
        labels: &[(&str, &str)],
        bounds_ns: &[u64],
        counts: &[u64],
        sum_ns: u64,
    ) {
        let mut cumulative = 0u64;
        let buckets = bounds_ns
            .iter()
            .zip(counts)
            .map(|(bound, count)| {
                cumulative += count;
                let mut bucket = proto::Bucket::default();
                bucket.set_upper_bound(*bound as f64 / 1e9);
                bucket.set_cumulative_count(cumulative);
                bucket
            })
            .collect();
        let total: u64 = counts.iter().sum();
        let mut histogram = proto::Histogram::default();
        histogram.set_bucket(buckets);
        histogram.set_sample_count(total);
        histogram.set_sample_sum(sum_ns as f64 / 1e9);
        let mut metric = Self::metric(labels);
        metric.set_histogram(histogram);
        self.family.mut_metric().push(metric);
    }

    pub fn finish(self) -> MetricFamily {
        self.family
    }
}

/// The descriptor a collector registers for a family it builds by hand.
pub fn desc(name: &str, help: &str, labels: &[&str]) -> Desc {
    Desc::new(
        name.to_string(),
        help.to_string(),
        labels.iter().map(|l| (*l).to_string()).collect(),
        Default::default(),
    )
    .expect("static metric description")
}
