//! What a set of customers looks like, for people who would rather look than read: the
//! fill rate of every field, customers created over time, and per field the top values
//! (strings) or the distribution (numbers, dates, datetimes). Summaries come from the
//! segment engine in one pass per field; [`render`] turns them into SVG charts.

use maud::{Markup, html};
use std::sync::atomic::{AtomicUsize, Ordering};

use unico_core::{FieldDef, FieldType, Schema};
use unico_engine::stats::{Attribute, TopValues};
use unico_engine::{AppIndex, ComputedColumn, Members};
use unico_filter::EvalContext;

use super::charts::{self, Buckets, Scale, Share};

/// Buckets a distribution aims for.
const TARGET_BUCKETS: usize = 16;
/// Values listed for a string field.
const TOP_VALUES: usize = 8;

/// One field's chart.
pub enum Chart {
    Top(TopValues),
    Columns(Buckets),
    /// No member holds a value.
    Empty,
    /// Every value is the same (to the hour for instants): a sentence says which.
    Single(String),
}

pub struct FieldSummary {
    pub name: String,
    pub field_type: FieldType,
    pub holding: u64,
    pub chart: Chart,
}

/// The charts of a set of members.
pub struct Summary {
    /// The zone instants are charted in.
    pub zone: String,
    pub total: u64,
    pub created: Chart,
    pub fields: Vec<FieldSummary>,
    /// Per channel the application takes subscriptions for, the members subscribed.
    pub subscribers: Vec<(String, u64)>,
}

/// Where a chart's values come from: a column of the index, or a computed field's values.
enum Source<'a> {
    Attr(&'a AppIndex, Attribute),
    Computed(Box<ComputedColumn>),
}

impl Source<'_> {
    fn holding(&self, members: &Members) -> u64 {
        match self {
            Source::Attr(index, attr) => index.holding(members, *attr),
            Source::Computed(c) => c.holding(members),
        }
    }

    fn range(&self, members: &Members) -> Option<(f64, f64)> {
        match self {
            Source::Attr(index, attr) => index.range(members, *attr),
            Source::Computed(c) => c.range(members),
        }
    }

    fn histogram(&self, members: &Members, start: f64, width: f64, buckets: usize) -> Vec<u64> {
        match self {
            Source::Attr(index, attr) => index.histogram(members, *attr, start, width, buckets),
            Source::Computed(c) => c.histogram(members, start, width, buckets),
        }
    }
}

/// Where instants are charted: the application's zone, by its offset now (bucket edges
/// fall on its midnights; a DST change within the range moves them by an hour).
#[derive(Clone, Copy)]
pub struct Zone<'a> {
    pub offset_ms: f64,
    pub name: &'a str,
}

impl<'a> Zone<'a> {
    pub fn of(app: &'a unico_core::Application, now_ms: i64) -> Self {
        Zone {
            offset_ms: super::timeline::offset_ms(app, now_ms) as f64,
            name: app.timezone.as_str(),
        }
    }

    /// Dates (no time of day) are charted as they are.
    const DATES: Zone<'static> = Zone {
        offset_ms: 0.0,
        name: "",
    };
}

/// The distribution of a source's values. Instants are bucketed on the zone's wall clock:
/// the buckets' `start` is a local time, shifted back to the instant for the count.
fn distribution(source: &Source<'_>, members: &Members, scale: Scale, zone: Zone<'_>) -> Chart {
    let Some((lo, hi)) = source.range(members) else {
        return Chart::Empty;
    };
    let shift = match scale {
        Scale::Time => zone.offset_ms,
        Scale::Number => 0.0,
    };
    let (lo, hi) = (lo + shift, hi + shift);
    match scale {
        Scale::Number if lo == hi => {
            return Chart::Single(format!("Every value is {}.", charts::number(lo)));
        }
        Scale::Time if hi - lo < 3_600_000.0 => {
            let at = unico_core::time::format_datetime(lo as i64)
                .get(..16)
                .unwrap_or_default()
                .replace('T', " ");
            return Chart::Single(if zone.name.is_empty() {
                format!("All within one hour of {at}.")
            } else {
                format!("All within one hour of {at} ({}).", zone.name)
            });
        }
        _ => {}
    }
    let step = match scale {
        Scale::Number => charts::number_step(lo, hi, TARGET_BUCKETS),
        Scale::Time => charts::time_step(lo, hi, TARGET_BUCKETS),
    };
    let (start, n) = charts::layout(lo, hi, step);
    Chart::Columns(Buckets {
        start,
        width: step,
        counts: source.histogram(members, start - shift, step, n),
        scale,
    })
}

fn summarize_field(
    index: &AppIndex,
    ctx: &EvalContext,
    members: &Members,
    def: &FieldDef,
    zone: Zone<'_>,
) -> FieldSummary {
    let attr = Attribute::Field(def.id);
    let source = match &def.computed {
        Some(c) => Source::Computed(Box::new(index.computed_column(c, ctx))),
        None => Source::Attr(index, attr),
    };
    let holding = source.holding(members);
    let chart = if holding == 0 {
        Chart::Empty
    } else {
        match def.field_type {
            FieldType::String => Chart::Top(index.top_values(members, attr, TOP_VALUES)),
            FieldType::Number => distribution(&source, members, Scale::Number, zone),
            FieldType::Date => distribution(&source, members, Scale::Time, Zone::DATES),
            FieldType::Datetime => distribution(&source, members, Scale::Time, zone),
        }
    };
    FieldSummary {
        name: def.name.as_str().to_owned(),
        field_type: def.field_type,
        holding,
        chart,
    }
}

/// Summarises `members` of `index` field by field, the fields shared out over the cores
/// (each is one pass over the members).
pub fn summarize(
    index: &AppIndex,
    ctx: &EvalContext,
    members: &Members,
    schema: &Schema,
    zone: Zone<'_>,
) -> Summary {
    let defs = schema.fields();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(defs.len() + 1);
    // Job 0 is the creation dates; job i + 1 is field i.
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let job = next.fetch_add(1, Ordering::Relaxed);
            if job > defs.len() {
                break done;
            }
            let result = match job {
                0 => Err(distribution(
                    &Source::Attr(index, Attribute::CreatedAt),
                    members,
                    Scale::Time,
                    zone,
                )),
                i => Ok(summarize_field(index, ctx, members, &defs[i - 1], zone)),
            };
            done.push((job, result));
        }
    };
    let mut results: Vec<(usize, Result<FieldSummary, Chart>)> = if threads <= 1 {
        work()
    } else {
        std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
            let mut all = work();
            for h in helpers {
                all.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
            }
            all
        })
    };
    results.sort_by_key(|(job, _)| *job);
    let mut created = Chart::Empty;
    let mut fields = Vec::with_capacity(defs.len());
    for (_, result) in results {
        match result {
            Ok(field) => fields.push(field),
            Err(chart) => created = chart,
        }
    }
    let subscribers = schema
        .subscription_channels()
        .iter()
        .map(|c| (c.as_str().to_owned(), index.subscribers(members, c)))
        .collect();
    Summary {
        zone: zone.name.to_owned(),
        total: members.len(),
        created,
        fields,
        subscribers,
    }
}

/// Where a chart's bars lead: the customers list, filtered by the set charted (`within`,
/// a filter's text; none for every customer) and the bar's own condition. A marketer sees
/// "ES 1,204" and wants those 1,204 people: one click, the same number in the list.
pub struct Drill<'a> {
    pub app: unico_core::AppId,
    pub within: Option<&'a str>,
}

impl Drill<'_> {
    /// The customers list of the set charted narrowed by `condition` (filter text).
    pub fn href(&self, condition: &str) -> String {
        let filter = match self.within {
            Some(within) if !within.trim().is_empty() => format!("({within}) and {condition}"),
            _ => condition.to_owned(),
        };
        format!(
            "/console/apps/{}/customers?filter={}",
            self.app,
            super::pages::encode(&filter)
        )
    }

    fn field(&self, name: &str, condition: &str) -> String {
        self.href(&format!("{} {condition}", unico_filter::name_literal(name)))
    }
}

/// The charts of a summary: fill rate and creation over time side by side, then one card
/// per field. Bars of fields, values, number ranges and channels lead to those customers.
pub fn render(summary: &Summary, drill: &Drill<'_>) -> Markup {
    let fill: Vec<Share<'_>> = summary
        .fields
        .iter()
        .map(|f| Share {
            label: &f.name,
            count: f.holding,
            of: summary.total,
        })
        .collect();
    html! {
        div class="charts" {
            div class="card chart-card" {
                h2 { "Fill rate" }
                p class="hint" { "Share of these " (charts::compact(summary.total)) " customers holding a value, per field. Click a bar to list them." }
                @if fill.is_empty() { p class="sub" { "No field yet." } }
                @else { (charts::shares_linked("Fill rate per field", &fill, |i| Some(drill.field(&summary.fields[i].name, "exists")))) }
            }
            div class="card chart-card" {
                h2 { "Subscribers" }
                p class="hint" { "Share of these " (charts::compact(summary.total)) " customers subscribed, per channel." }
                @let subscribed: Vec<Share<'_>> = summary
                    .subscribers
                    .iter()
                    .map(|(channel, count)| Share { label: channel, count: *count, of: summary.total })
                    .collect();
                (charts::shares_linked("Subscribers per channel", &subscribed, |i| {
                    Some(drill.href(&format!("subscribed {}", unico_filter::name_literal(&summary.subscribers[i].0))))
                }))
            }
            div class="card chart-card" {
                h2 { "Customers over time" }
                p class="hint" { "When these customers were created (" (summary.zone) " time)." }
                (chart(&summary.created, "Customers created over time", summary.total, None))
            }
            @for f in &summary.fields {
                div class="card chart-card" {
                    h2 { span class="mono" { (f.name) } " " span class="pill" { (f.field_type.as_str()) } }
                    p class="hint" { (caption(f, summary.total)) }
                    (chart(&f.chart, &f.name, f.holding, Some((drill, f))))
                }
            }
        }
    }
}

fn caption(f: &FieldSummary, total: u64) -> String {
    let held = format!(
        "{} of {} hold a value",
        charts::compact(f.holding),
        charts::compact(total)
    );
    match &f.chart {
        Chart::Top(top) => format!("{held}; {} distinct; most frequent first.", top.distinct),
        Chart::Columns(_) => format!("{held}; distribution of the values."),
        Chart::Empty | Chart::Single(_) => format!("{held}."),
    }
}

/// A number as the filter's text form reads it back exactly (the shortest text of the
/// same `f64`), so that a bucket's condition has the bucket's very edges.
fn exact_number(x: f64) -> String {
    format!("{x}")
}

/// Whether nearly every customer holding a string field holds their own value (emails,
/// names): more than 50 distinct values, and at least 9 in 10 holders with a value of
/// their own. Its most frequent values then occur once or twice: no chart, no suggestion.
pub(super) fn nearly_unique(distinct: u64, holding: u64) -> bool {
    distinct > 50 && distinct * 10 >= holding * 9
}

fn chart(
    chart: &Chart,
    title: &str,
    holding: u64,
    drill: Option<(&Drill<'_>, &FieldSummary)>,
) -> Markup {
    match chart {
        Chart::Empty => html! { p class="sub empty-chart" { "No value to chart." } },
        Chart::Single(text) => html! { p class="sub empty-chart" { (text) } },
        // Number ranges lead to their customers; instants do not (yet): their buckets are
        // on the zone's wall clock, which the filter's bounds would need to restate.
        Chart::Columns(buckets) => match (drill, buckets.scale) {
            (Some((drill, f)), Scale::Number) => {
                let last = buckets.counts.len().saturating_sub(1);
                charts::columns_linked(title, buckets, |i| {
                    let edge =
                        |i| unico_engine::stats::bucket_edge(buckets.start, buckets.width, i);
                    let (lo, hi) = (edge(i), edge(i + 1));
                    // The last bucket holds everything from its start (the histogram
                    // clamps the values past its end into it).
                    Some(if i == last {
                        drill.field(&f.name, &format!(">= {}", exact_number(lo)))
                    } else {
                        let name = unico_filter::name_literal(&f.name);
                        drill.href(&format!(
                            "{name} >= {} and {name} < {}",
                            exact_number(lo),
                            exact_number(hi)
                        ))
                    })
                })
            }
            _ => charts::columns(title, buckets),
        },
        Chart::Top(top) if nearly_unique(top.distinct, holding) => html! {
            p class="sub empty-chart" { "Nearly every customer holds their own value (" (top.distinct) " distinct): nothing stands out." }
        },
        Chart::Top(top) => {
            let mut items: Vec<Share<'_>> = top
                .values
                .iter()
                .map(|(label, count)| Share {
                    label,
                    count: *count,
                    of: holding,
                })
                .collect();
            if top.others > 0 {
                items.push(Share {
                    label: "(all others)",
                    count: top.others,
                    of: holding,
                });
            }
            charts::shares_linked(title, &items, |i| {
                let (drill, f) = drill?;
                // "(all others)" is not one value.
                let (value, _) = top.values.get(i)?;
                Some(drill.field(
                    &f.name,
                    &format!("= {}", unico_filter::string_literal(value)),
                ))
            })
        }
    }
}
