//! The weekly cutover window (`spec.cutover.window`) as instants: whether it is open at a
//! given instant and when it opens next. Pure arithmetic on the instant passed in.
//!
//! A window opens on each listed day (every day when none are listed) at `start` local time
//! and closes at `end`, on the same day or, when `end` is not after `start`, the next day
//! (a window crossing midnight belongs to the day it opens on). Local times that a daylight
//! saving change skips open at the first minute that exists; times that happen twice mean
//! their first occurrence.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use crate::spec::{Weekday, Window};

/// A parsed cutover window.
#[derive(Clone, Debug, PartialEq)]
pub struct CutoverWindow {
    days: Vec<chrono::Weekday>,
    start: NaiveTime,
    end: NaiveTime,
    tz: Tz,
    text: String,
}

impl CutoverWindow {
    /// Parses the manifest's window; the error says what is wrong in plain words.
    pub fn parse(w: &Window) -> Result<Self, String> {
        let start =
            parse_hhmm(&w.start).ok_or_else(|| format!("start `{}` is not HH:MM", w.start))?;
        let end = parse_hhmm(&w.end).ok_or_else(|| format!("end `{}` is not HH:MM", w.end))?;
        if start == end {
            return Err("it opens and closes at the same time".into());
        }
        let tz: Tz = w
            .time_zone
            .parse()
            .map_err(|_| format!("`{}` is not an IANA time zone", w.time_zone))?;
        let days: Vec<chrono::Weekday> = w.days.iter().map(|d| weekday(*d)).collect();
        let day_text = if days.is_empty() {
            "daily".to_owned()
        } else {
            w.days
                .iter()
                .map(|d| format!("{d:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let text = format!(
            "{day_text} {}–{} {}",
            start.format("%H:%M"),
            end.format("%H:%M"),
            w.time_zone
        );
        Ok(CutoverWindow {
            days,
            start,
            end,
            tz,
            text,
        })
    }

    /// Whether the window is open at `t`.
    pub fn is_open(&self, t: DateTime<Utc>) -> bool {
        self.opening_containing(t).is_some()
    }

    /// When the occurrence of the window that contains `t` opened, if it is open.
    pub fn opening_containing(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.occurrences_around(t)
            .find(|(s, e)| *s <= t && t < *e)
            .map(|(s, _)| s)
    }

    /// The earliest instant at or after `t` at which the window is open.
    pub fn next_open(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        self.occurrences_around(t)
            .filter(|(_, e)| *e > t)
            .map(|(s, _)| s.max(t))
            .min()
            // Every week has at least one listed day, so an occurrence always lies within
            // the dates searched; this is only a guard.
            .unwrap_or(t)
    }

    /// The window in plain words, e.g. `Sat, Sun 01:00–05:00 Europe/Berlin`.
    pub fn describe(&self) -> &str {
        &self.text
    }

    /// Occurrences opening from two days before `t` to nine days after it, in order:
    /// enough to contain `t` (a window lasts less than a day) and the next opening (at most
    /// a week away).
    fn occurrences_around(
        &self,
        t: DateTime<Utc>,
    ) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        let today = t.with_timezone(&self.tz).date_naive();
        (-2..=9)
            .filter_map(move |offset| today.checked_add_signed(TimeDelta::days(offset)))
            .filter(|d| self.days.is_empty() || self.days.contains(&d.weekday()))
            .map(|d| self.occurrence(d))
            .filter(|(s, e)| s < e)
    }

    fn occurrence(&self, day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
        let end_day = if self.end > self.start {
            day
        } else {
            day.succ_opt().unwrap_or(day)
        };
        (
            resolve(&self.tz, day.and_time(self.start)),
            resolve(&self.tz, end_day.and_time(self.end)),
        )
    }
}

/// A local time as an instant: the first minute at or after it that exists in `tz`, the
/// first of two if it happens twice.
fn resolve(tz: &Tz, local: NaiveDateTime) -> DateTime<Utc> {
    (0..=24 * 60)
        .find_map(|m| {
            tz.from_local_datetime(&(local + TimeDelta::minutes(m)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| local.and_utc())
}

fn parse_hhmm(s: &str) -> Option<NaiveTime> {
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0)
}

fn weekday(d: Weekday) -> chrono::Weekday {
    match d {
        Weekday::Mon => chrono::Weekday::Mon,
        Weekday::Tue => chrono::Weekday::Tue,
        Weekday::Wed => chrono::Weekday::Wed,
        Weekday::Thu => chrono::Weekday::Thu,
        Weekday::Fri => chrono::Weekday::Fri,
        Weekday::Sat => chrono::Weekday::Sat,
        Weekday::Sun => chrono::Weekday::Sun,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(days: &[Weekday], start: &str, end: &str, tz: &str) -> CutoverWindow {
        CutoverWindow::parse(&Window {
            days: days.to_vec(),
            start: start.into(),
            end: end.into(),
            time_zone: tz.into(),
        })
        .unwrap()
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn weekend_nights_in_berlin() {
        // 2026-11-20 is a Friday; Berlin is UTC+1 in November.
        let w = window(
            &[Weekday::Sat, Weekday::Sun],
            "01:00",
            "05:00",
            "Europe/Berlin",
        );
        assert_eq!(w.describe(), "Sat, Sun 01:00–05:00 Europe/Berlin");
        let fri = t("2026-11-20T10:00:00Z");
        assert!(!w.is_open(fri));
        assert_eq!(w.next_open(fri), t("2026-11-21T00:00:00Z"));
        assert!(w.is_open(t("2026-11-21T00:00:00Z")));
        assert!(w.is_open(t("2026-11-21T03:59:59Z")));
        assert!(!w.is_open(t("2026-11-21T04:00:00Z")));
        assert_eq!(
            w.next_open(t("2026-11-21T04:00:00Z")),
            t("2026-11-22T00:00:00Z")
        );
        assert_eq!(
            w.opening_containing(t("2026-11-22T02:00:00Z")),
            Some(t("2026-11-22T00:00:00Z"))
        );
        // Sunday's window closes; the next one is the following Saturday.
        assert_eq!(
            w.next_open(t("2026-11-22T05:00:00Z")),
            t("2026-11-28T00:00:00Z")
        );
    }

    #[test]
    fn crossing_midnight_belongs_to_the_opening_day() {
        // Fridays 22:00 until Saturday 02:00, UTC.
        let w = window(&[Weekday::Fri], "22:00", "02:00", "UTC");
        assert!(w.is_open(t("2026-11-20T23:30:00Z")));
        assert!(w.is_open(t("2026-11-21T01:59:00Z")));
        assert!(!w.is_open(t("2026-11-21T02:00:00Z")));
        // Saturday 22:00 is not a Friday.
        assert!(!w.is_open(t("2026-11-21T23:00:00Z")));
        assert_eq!(
            w.opening_containing(t("2026-11-21T01:00:00Z")),
            Some(t("2026-11-20T22:00:00Z"))
        );
        assert_eq!(
            w.next_open(t("2026-11-21T03:00:00Z")),
            t("2026-11-27T22:00:00Z")
        );
    }

    #[test]
    fn every_day_when_no_days_are_listed() {
        let w = window(&[], "09:00", "10:00", "America/New_York");
        assert_eq!(w.describe(), "daily 09:00–10:00 America/New_York");
        // 14:30Z is 09:30 in New York (UTC-5 in November).
        assert!(w.is_open(t("2026-11-18T14:30:00Z")));
        assert_eq!(
            w.next_open(t("2026-11-18T16:00:00Z")),
            t("2026-11-19T14:00:00Z")
        );
    }

    #[test]
    fn daylight_saving_gap_opens_at_the_first_existing_minute() {
        // Berlin skips 02:00–03:00 on 2026-03-29 (a Sunday): 02:30 local does not exist.
        let w = window(&[Weekday::Sun], "02:30", "04:00", "Europe/Berlin");
        // 03:00 CEST is 01:00Z.
        assert_eq!(
            w.next_open(t("2026-03-28T12:00:00Z")),
            t("2026-03-29T01:00:00Z")
        );
        assert!(w.is_open(t("2026-03-29T01:30:00Z")));
        assert!(!w.is_open(t("2026-03-29T02:00:00Z")));
    }

    #[test]
    fn daylight_saving_repeat_takes_the_first_occurrence() {
        // Berlin repeats 02:00–03:00 on 2026-10-25 (a Sunday).
        let w = window(&[Weekday::Sun], "02:30", "03:30", "Europe/Berlin");
        // First 02:30 is CEST (00:30Z); 03:30 CET is 02:30Z.
        assert_eq!(
            w.next_open(t("2026-10-24T12:00:00Z")),
            t("2026-10-25T00:30:00Z")
        );
        assert!(w.is_open(t("2026-10-25T02:00:00Z")));
        assert!(!w.is_open(t("2026-10-25T02:30:00Z")));
    }

    #[test]
    fn next_open_is_now_inside_the_window() {
        let w = window(&[], "00:00", "23:59", "UTC");
        let now = t("2026-11-18T12:34:56Z");
        assert_eq!(w.next_open(now), now);
    }

    #[test]
    fn bad_windows_say_why() {
        let bad = |start: &str, end: &str, tz: &str| {
            CutoverWindow::parse(&Window {
                days: vec![],
                start: start.into(),
                end: end.into(),
                time_zone: tz.into(),
            })
            .unwrap_err()
        };
        assert!(bad("1am", "05:00", "UTC").contains("1am"));
        assert!(bad("01:00", "01:00", "UTC").contains("same time"));
        assert!(bad("01:00", "02:00", "Mars/Olympus").contains("Mars/Olympus"));
    }
}
