//! Small bar charts as server-rendered SVG: no script, no library, no
//! inline style (the CSP forbids it; colours come from the stylesheet's
//! classes). Each bar is a minute or an hour of gateway logins,
//! connections and refusals stacked; every bar carries a title for
//! pointers and the chart a text summary for screen readers.

use latchkey_gateway::activity::Minute;
use maud::{Markup, html};

const WIDTH: u32 = 600;
const HEIGHT: u32 = 100;

/// One bar: its time label and its counts.
pub struct Bar {
    pub label: String,
    pub counts: Minute,
}

/// `HH:MM` UTC of a Unix time.
pub fn clock(unix_secs: i64) -> String {
    latchkey_identity::iso8601(unix_secs)
        .get(11..16)
        .unwrap_or_default()
        .to_owned()
}

/// Bars from per-minute counts ending at `now`, `per_bar` minutes each
/// (oldest first), labelled by their first minute.
pub fn bars(minutes: &[Minute], per_bar: usize, now: i64) -> Vec<Bar> {
    let per_bar = per_bar.max(1);
    let first_minute = now.div_euclid(60) - minutes.len() as i64 + 1;
    minutes
        .chunks(per_bar)
        .enumerate()
        .map(|(i, chunk)| {
            let mut counts = Minute::default();
            for m in chunk {
                counts += *m;
            }
            Bar {
                label: clock((first_minute + (i * per_bar) as i64) * 60),
                counts,
            }
        })
        .collect()
}

/// A stacked bar chart of `bars` under `title`; `id` makes its element
/// ids unique on the page.
pub fn stacked_bars(id: &str, title: &str, bars: &[Bar]) -> Markup {
    let total = bars.iter().fold(Minute::default(), |mut t, b| {
        t += b.counts;
        t
    });
    let peak = bars
        .iter()
        .map(|b| b.counts.connections.saturating_add(b.counts.refusals))
        .max()
        .unwrap_or(0)
        .max(1);
    let n = u32::try_from(bars.len()).unwrap_or(u32::MAX).max(1);
    let slot = WIDTH / n;
    let scale = |v: u32| (u64::from(v) * u64::from(HEIGHT) / u64::from(peak)) as u32;
    let summary = format!(
        "{} connections and {} refusals in all; the busiest {} had {peak} logins.",
        total.connections,
        total.refusals,
        if bars.len() > 30 { "minute" } else { "hour" }
    );
    html! {
        figure.chart {
            svg #(id) role="img" aria-labelledby={ (id) "-title " (id) "-desc" }
                viewBox={ "0 0 " (WIDTH) " " (HEIGHT + 16) } width="100%" {
                title #{ (id) "-title" } { (title) }
                desc #{ (id) "-desc" } { (summary) }
                @for (i, b) in bars.iter().enumerate() {
                    @let x = u32::try_from(i).unwrap_or(0) * slot;
                    @let c = scale(b.counts.connections);
                    @let r = scale(b.counts.refusals);
                    g {
                        title { (b.label) " UTC: " (b.counts.connections) " connections, " (b.counts.refusals) " refused" }
                        rect.c x=(x) y=(HEIGHT - c) width=(slot.saturating_sub(1).max(1)) height=(c) {}
                        rect.r x=(x) y=(HEIGHT - c - r) width=(slot.saturating_sub(1).max(1)) height=(r) {}
                    }
                }
                @if let Some(first) = bars.first() {
                    text.axis x="0" y=(HEIGHT + 14) { (first.label) " UTC" }
                    text.axis x=(WIDTH) y=(HEIGHT + 14) text-anchor="end" { "now" }
                }
            }
            figcaption {
                span.key.c { "■" } " connections " (total.connections) "  "
                span.key.r { "■" } " refusals " (total.refusals)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_sum_their_minutes_and_are_labelled_by_their_first() {
        let now = 1_700_000_000 - 1_700_000_000 % 3600 + 3599; // hh:59:59
        let mut minutes = vec![Minute::default(); 120];
        minutes[0].connections = 2;
        minutes[59].refusals = 1;
        minutes[60].connections = 5;
        let b = bars(&minutes, 60, now);
        assert_eq!(b.len(), 2);
        assert_eq!(
            b[0].counts,
            Minute {
                connections: 2,
                refusals: 1
            }
        );
        assert_eq!(b[1].counts.connections, 5);
        assert!(b[0].label.ends_with(":00") && b[1].label.ends_with(":00"));
        let svg = stacked_bars("hour", "Logins <per> hour", &b).into_string();
        assert!(svg.contains("Logins &lt;per&gt; hour"));
        assert!(svg.contains("7 connections and 1 refusals"));
        assert!(!svg.contains("style="), "the CSP forbids inline style");
    }
}
