//! Event-time alignment of stage 1's partitions.
//!
//! Stage 2 settles correlation signals by event time: a signal older than
//! its input's newest event time minus `allowed_lateness` counts as late.
//! In real time every partition of an agency is near "now", so their
//! signals arrive nearly in order. In a catch-up (the detector was down,
//! or an agency's collectors flush an hour of buffered logs) they do not:
//! one partition may hold minutes of events where another holds seconds,
//! Kafka hands out whatever it fetched, and without help most signals of
//! the slower partitions would arrive late.
//!
//! So stage 1 releases evaluated events to its stateful half (suppression,
//! signals) in event-time order across the partitions of one agency, the
//! way Kafka Streams picks records across a task's partitions: each
//! partition's evaluated events wait in a queue, and the next one released
//! is the oldest head among them, as long as no partition of the same
//! agency that still has unread messages (and an empty queue) is more than
//! `max_skew` behind it. Partitions at their end do not hold the others
//! back; neither does one that has delivered nothing for `idle_after`
//! (e.g. one whose last offsets are transaction markers).
//!
//! Within a partition the order never changes, so offsets stay contiguous:
//! the offset committed for a partition is that of its first event not yet
//! released. Memory is bounded by `budget` queued events in all; above it
//! the longest queue's partition is paused (nothing is lost: librdkafka
//! resumes it after the last message it returned, all of which are here).
//!
//! This type knows nothing of Kafka: the stage tells it what was polled,
//! which partitions are at their end, and carries out its pauses.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How strictly partitions are kept together in event time.
#[derive(Debug, Clone, Copy)]
pub struct AlignSettings {
    /// How far ahead (event time) of a lagging partition another may run.
    /// Zero turns alignment off: events are released as they are polled.
    pub max_skew: Duration,
    /// A partition that has delivered nothing this long holds no one back.
    pub idle_after: Duration,
    /// Events queued in all before the longest queue's partition is paused.
    pub budget: usize,
}

impl AlignSettings {
    /// Half of stage 2's allowed lateness: the other half is left for the
    /// disorder within a partition and between agencies' collectors.
    pub fn for_lateness(lateness: Duration) -> AlignSettings {
        AlignSettings {
            max_skew: lateness / 2,
            idle_after: Duration::from_secs(5),
            budget: 100_000,
        }
    }
}

/// A paused partition's queue is refilled (the partition resumed) below this.
const RESUME_BELOW: usize = 1024;

/// An event released for processing.
pub struct Released<T> {
    /// Index of its partition (see [`Aligner::partition`]).
    pub part: usize,
    pub offset: i64,
    pub item: T,
}

struct Queued<T> {
    offset: i64,
    time: i64,
    item: T,
}

struct Part<T> {
    topic: String,
    partition: i32,
    /// Index into `groups`: partitions are aligned within an agency only.
    group: usize,
    queue: VecDeque<Queued<T>>,
    /// Newest event time polled here (µs since the epoch); `i64::MIN`
    /// before the first event with a time.
    frontier: i64,
    /// Offset after the last message polled here.
    polled_next: i64,
    /// No unread messages as far as the last refresh knew.
    at_end: bool,
    last_delivery: Instant,
    paused: bool,
}

/// One agency in a scan: its oldest head (time, partition), the
/// second-oldest head's time, and how far any head may go before a
/// partition held back catches up.
#[derive(Clone, Copy)]
struct GroupScan {
    oldest: Option<(i64, usize)>,
    second: i64,
    limit: i64,
}

/// A partition to read again from an offset: (topic, partition, offset).
pub type ReadAgain = (String, i32, i64);

/// Stage 1's per-agency event-time merge; `T` is what the stage keeps per
/// evaluated message.
pub struct Aligner<T> {
    settings: AlignSettings,
    skew_us: i64,
    parts: Vec<Part<T>>,
    groups: Vec<String>,
    /// Index of the partition of the previous push: polls come in runs.
    last: usize,
    queued: usize,
    /// Wall clock (µs) at the last refresh: event times beyond it (a
    /// device with a wrong clock) count as now.
    now_us: i64,
    /// Partitions the stage must pause / resume, collected until taken.
    to_pause: Vec<usize>,
    /// The partition being released from and the newest event time it may
    /// release up to without looking at the others again: polls come in
    /// runs of one partition, and a scan per event would cost more than
    /// the rest of the merge.
    run: Option<(usize, i64)>,
    /// Per group, reused by each scan.
    scan: Vec<GroupScan>,
}

impl<T> Aligner<T> {
    pub fn new(settings: AlignSettings) -> Aligner<T> {
        Aligner {
            settings,
            skew_us: i64::try_from(settings.max_skew.as_micros()).unwrap_or(i64::MAX),
            parts: Vec::new(),
            groups: Vec::new(),
            last: 0,
            queued: 0,
            now_us: i64::MAX,
            to_pause: Vec::new(),
            run: None,
            scan: Vec::new(),
        }
    }

    /// Whether events wait for each other at all.
    pub fn enabled(&self) -> bool {
        self.skew_us > 0
    }

    /// Events polled and not yet released.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Topic and partition of a partition index.
    pub fn partition(&self, part: usize) -> (&str, i32) {
        let p = &self.parts[part];
        (&p.topic, p.partition)
    }

    fn index_of(&mut self, topic: &str, partition: i32, now: Instant) -> usize {
        let same = |p: &Part<T>| p.partition == partition && p.topic == topic;
        if let Some(p) = self.parts.get(self.last) {
            if same(p) {
                return self.last;
            }
        }
        if let Some(i) = self.parts.iter().position(same) {
            self.last = i;
            return i;
        }
        let agency = qalqan_core::topics::agency_of(topic).unwrap_or(topic);
        let group = match self.groups.iter().position(|g| g == agency) {
            Some(g) => g,
            None => {
                self.groups.push(agency.to_owned());
                self.groups.len() - 1
            }
        };
        self.parts.push(Part {
            topic: topic.to_owned(),
            partition,
            group,
            queue: VecDeque::new(),
            frontier: i64::MIN,
            polled_next: 0,
            at_end: false,
            last_delivery: now,
            paused: false,
        });
        self.last = self.parts.len() - 1;
        self.last
    }

    /// Announces a partition assigned here that has delivered nothing yet,
    /// with the offset it will be read from: until it delivers (or is at
    /// its end, or silent for `idle_after`) its agency's events wait, as
    /// its first events may be the oldest.
    pub fn expect(&mut self, topic: &str, partition: i32, from: i64, now: Instant) {
        let i = self.index_of(topic, partition, now);
        let p = &mut self.parts[i];
        p.polled_next = from;
        p.last_delivery = now;
        self.run = None;
    }

    /// Queues an evaluated message, in poll order; `time_us` is its event
    /// time (`None` for a message without one, e.g. undecodable: it goes
    /// as soon as it is its partition's head).
    pub fn push(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        time_us: Option<i64>,
        item: T,
        now: Instant,
    ) {
        let i = self.index_of(topic, partition, now);
        let run = self.run;
        let p = &mut self.parts[i];
        let new_head = p.queue.is_empty();
        p.polled_next = offset + 1;
        p.last_delivery = now;
        p.at_end = false;
        let time = match time_us {
            Some(t) => {
                let t = t.min(self.now_us);
                p.frontier = p.frontier.max(t);
                t
            }
            None => p.frontier,
        };
        let group = p.group;
        p.queue.push_back(Queued { offset, time, item });
        self.queued += 1;
        if let Some((r, limit)) = run {
            // A new head in the run's agency may be older than the run's.
            if r != i && new_head && self.parts[r].group == group {
                self.run = Some((r, limit.min(time)));
            }
        }
        if self.queued > self.settings.budget {
            self.pause_longest();
        }
    }

    fn pause_longest(&mut self) {
        let longest = self
            .parts
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.paused)
            .max_by_key(|(_, p)| p.queue.len())
            .map(|(i, _)| i);
        if let Some(i) = longest {
            if self.parts[i].queue.len() > RESUME_BELOW {
                self.parts[i].paused = true;
                self.to_pause.push(i);
            }
        }
    }

    /// The partitions to pause now (their queues are long enough).
    pub fn take_pauses(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.to_pause)
    }

    /// Updates which partitions are at their end from `high_watermark`
    /// (librdkafka's cached high watermark, no network call) and returns
    /// the paused partitions whose queues ran low, to resume.
    pub fn refresh(
        &mut self,
        high_watermark: impl Fn(&str, i32) -> Option<i64>,
        now_us: i64,
    ) -> Vec<usize> {
        self.now_us = now_us;
        // A partition found behind again may hold the run back.
        self.run = None;
        let mut resume = Vec::new();
        for (i, p) in self.parts.iter_mut().enumerate() {
            // One past the last message: after a transaction, the high
            // watermark is its commit marker, which is never delivered.
            p.at_end = !p.paused
                && high_watermark(&p.topic, p.partition).is_some_and(|h| p.polled_next + 1 >= h);
            if p.paused && p.queue.len() < RESUME_BELOW {
                p.paused = false;
                resume.push(i);
            }
        }
        resume
    }

    /// Whether partition `q` holds back the others of its group now: it
    /// has unread messages (as far as we know) but none queued here.
    fn holds_back(&self, q: &Part<T>, now: Instant) -> bool {
        q.queue.is_empty()
            && !q.at_end
            && now.duration_since(q.last_delivery) < self.settings.idle_after
    }

    /// The next event to release, if any may go now.
    pub fn pop(&mut self, now: Instant) -> Option<Released<T>> {
        let in_run = self.run.filter(|&(i, limit)| {
            self.parts[i]
                .queue
                .front()
                .is_some_and(|head| head.time <= limit)
        });
        let i = match in_run {
            Some((i, _)) => i,
            None => {
                self.run = self.next_run(now);
                self.run?.0
            }
        };
        let q = self.parts[i].queue.pop_front()?;
        self.queued -= 1;
        Some(Released {
            part: i,
            offset: q.offset,
            item: q.item,
        })
    }

    /// Scans every partition for the next one to release from, and how
    /// far it may go.
    fn next_run(&mut self, now: Instant) -> Option<(usize, i64)> {
        if !self.enabled() {
            let i = self.parts.iter().position(|p| !p.queue.is_empty())?;
            return Some((i, i64::MAX));
        }
        // Per group: the oldest head, the second-oldest head's time, and
        // how far any head may go before a partition held back catches up.
        let mut scan = std::mem::take(&mut self.scan);
        scan.clear();
        let empty = GroupScan {
            oldest: None,
            second: i64::MAX,
            limit: i64::MAX,
        };
        scan.resize(self.groups.len(), empty);
        for (i, p) in self.parts.iter().enumerate() {
            let g = &mut scan[p.group];
            match p.queue.front() {
                Some(head) => match g.oldest {
                    Some((t, _)) if head.time >= t => g.second = g.second.min(head.time),
                    Some((t, _)) => {
                        g.second = t;
                        g.oldest = Some((head.time, i));
                    }
                    None => g.oldest = Some((head.time, i)),
                },
                // One that has not delivered a time yet holds back all.
                None if self.holds_back(p, now) => {
                    g.limit = g.limit.min(p.frontier.saturating_add(self.skew_us));
                }
                None => {}
            }
        }
        let next = scan.iter().find_map(|g| {
            g.oldest
                .filter(|&(t, _)| t <= g.limit)
                .map(|(_, i)| (i, g.second.min(g.limit)))
        });
        self.scan = scan;
        next
    }

    /// Where each partition with queued events must be read again from
    /// (its first queued offset), for a rewind; then forgets everything.
    /// Also returns the partitions that were paused, to resume.
    pub fn clear(&mut self) -> (Vec<ReadAgain>, Vec<(String, i32)>) {
        let rewind = self
            .parts
            .iter()
            .filter_map(|p| {
                p.queue
                    .front()
                    .map(|q| (p.topic.clone(), p.partition, q.offset))
            })
            .collect();
        let paused = self
            .parts
            .iter()
            .filter(|p| p.paused)
            .map(|p| (p.topic.clone(), p.partition))
            .collect();
        self.parts.clear();
        self.groups.clear();
        self.to_pause.clear();
        self.last = 0;
        self.queued = 0;
        self.run = None;
        (rewind, paused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn aligner(skew_secs: u64) -> Aligner<&'static str> {
        with_budget(skew_secs, 100_000)
    }

    fn with_budget(skew_secs: u64, budget: usize) -> Aligner<&'static str> {
        Aligner::new(AlignSettings {
            max_skew: Duration::from_secs(skew_secs),
            idle_after: Duration::from_secs(5),
            budget,
        })
    }

    /// Pops everything that may go now, as (partition, offset).
    fn drain(a: &mut Aligner<&'static str>, now: Instant) -> Vec<(i32, i64)> {
        let mut out = Vec::new();
        while let Some(r) = a.pop(now) {
            out.push((a.partition(r.part).1, r.offset));
        }
        out
    }

    /// Nobody is at the end: every partition still has unread messages.
    fn nothing_at_end(_: &str, _: i32) -> Option<i64> {
        Some(i64::MAX)
    }

    #[test]
    fn releases_the_oldest_head_first_across_partitions_of_an_agency() {
        let mut a = aligner(1);
        let now = Instant::now();
        // Partition 0: an event every second; partition 1: every 10 s.
        for i in 0..30 {
            a.push("qalqan.events.mof", 0, i, Some(i * S), "e", now);
        }
        for i in 0..3 {
            a.push("qalqan.events.mof", 1, i, Some(i * 10 * S), "e", now);
        }
        let order = drain(&mut a, now);
        let times: Vec<i64> = order
            .iter()
            .map(|&(p, o)| if p == 0 { o } else { o * 10 })
            .collect();
        let mut sorted = times.clone();
        sorted.sort();
        // Partition 1's queue ran dry at t=20 while it still lags: partition
        // 0 may go on to 21 (one second of skew), no further.
        assert_eq!(times, sorted, "released out of event-time order");
        assert_eq!(order.len(), 3 + 22, "{order:?}");
        assert_eq!(a.queued(), 8);
        // Partition 1 reaches its end: the rest may go.
        a.refresh(|_, p| Some(if p == 1 { 3 } else { i64::MAX }), i64::MAX);
        assert_eq!(drain(&mut a, now).len(), 8);
    }

    #[test]
    fn a_partition_behind_holds_the_others_back_until_it_catches_up() {
        let mut a = aligner(2);
        let now = Instant::now();
        a.push("qalqan.events.mof", 1, 0, Some(10 * S), "slow", now);
        assert_eq!(drain(&mut a, now), vec![(1, 0)]);
        a.push("qalqan.events.mof", 0, 0, Some(100 * S), "fast", now);
        a.refresh(nothing_at_end, i64::MAX);
        assert!(
            drain(&mut a, now).is_empty(),
            "ran ahead of a lagging partition"
        );
        // The slow one moves to within the skew: the fast one may go.
        a.push("qalqan.events.mof", 1, 1, Some(98 * S), "slow", now);
        assert_eq!(drain(&mut a, now), vec![(1, 1), (0, 0)]);
    }

    #[test]
    fn a_partition_silent_for_idle_after_holds_no_one_back() {
        let mut a = aligner(2);
        let then = Instant::now();
        a.push("qalqan.events.mof", 1, 0, Some(10 * S), "slow", then);
        drain(&mut a, then);
        a.push("qalqan.events.mof", 0, 0, Some(100 * S), "fast", then);
        a.refresh(nothing_at_end, i64::MAX);
        assert!(drain(&mut a, then).is_empty());
        let later = then + Duration::from_secs(6);
        assert_eq!(drain(&mut a, later), vec![(0, 0)]);
    }

    #[test]
    fn agencies_do_not_wait_for_each_other() {
        let mut a = aligner(2);
        let now = Instant::now();
        a.push("qalqan.events.mof", 0, 0, Some(10 * S), "mof", now);
        drain(&mut a, now);
        a.push("qalqan.events.moh", 0, 0, Some(1000 * S), "moh", now);
        a.refresh(nothing_at_end, i64::MAX);
        assert_eq!(drain(&mut a, now), vec![(0, 0)]);
        // Raw lines of an agency are aligned with its events.
        a.push("qalqan.raw.mof", 0, 0, Some(1000 * S), "raw", now);
        assert!(drain(&mut a, now).is_empty());
    }

    #[test]
    fn keeps_each_partitions_order_even_when_its_times_go_back() {
        let mut a = aligner(1);
        let now = Instant::now();
        for (o, t) in [(0, 50), (1, 40), (2, 60), (3, 10)] {
            a.push("qalqan.events.mof", 0, o, Some(t * S), "e", now);
        }
        a.push("qalqan.events.mof", 1, 0, Some(45 * S), "e", now);
        a.refresh(|_, _| Some(0), i64::MAX);
        let order = drain(&mut a, now);
        let p0: Vec<i64> = order.iter().filter(|x| x.0 == 0).map(|x| x.1).collect();
        assert_eq!(p0, vec![0, 1, 2, 3]);
        assert_eq!(order.len(), 5);
    }

    #[test]
    fn events_without_a_time_and_from_the_future_do_not_block() {
        let mut a = aligner(1);
        let now = Instant::now();
        a.refresh(nothing_at_end, 500 * S);
        a.push("qalqan.events.mof", 1, 0, Some(400 * S), "e", now);
        drain(&mut a, now);
        // A wrong clock far ahead counts as "now" (500 s), not year 2999.
        a.push("qalqan.events.mof", 0, 0, Some(i64::MAX / 2), "future", now);
        a.push("qalqan.events.mof", 1, 1, Some(499 * S), "e", now);
        assert_eq!(drain(&mut a, now), vec![(1, 1), (0, 0)]);
        // An undecodable message goes as soon as it heads its partition.
        a.push("qalqan.events.mof", 2, 0, None, "bad", now);
        assert_eq!(drain(&mut a, now), vec![(2, 0)]);
    }

    #[test]
    fn over_budget_the_longest_queue_is_paused_and_resumed_once_drained() {
        let mut a = with_budget(1, 3000);
        let now = Instant::now();
        a.push("qalqan.events.mof", 1, 0, Some(0), "slow", now);
        drain(&mut a, now);
        for i in 0..3001 {
            a.push("qalqan.events.mof", 0, i, Some(100 * S + i), "fast", now);
        }
        let paused = a.take_pauses();
        assert_eq!(paused.len(), 1);
        assert_eq!(a.partition(paused[0]), ("qalqan.events.mof", 0));
        assert!(a.take_pauses().is_empty());
        // Still paused while its queue is long.
        assert!(a.refresh(nothing_at_end, i64::MAX).is_empty());
        a.push("qalqan.events.mof", 1, 1, Some(200 * S), "slow", now);
        // Partition 0's queue drains; paused, it still has unread messages,
        // so partition 1 (far ahead now) waits for it.
        assert_eq!(drain(&mut a, now).len(), 3001);
        let resumed = a.refresh(nothing_at_end, i64::MAX);
        assert_eq!(resumed, paused);
        assert!(drain(&mut a, now).is_empty());
        a.refresh(|_, p| Some(if p == 0 { 3001 } else { i64::MAX }), i64::MAX);
        assert_eq!(drain(&mut a, now), vec![(1, 1)]);
    }

    #[test]
    fn clear_tells_where_to_read_again_and_what_to_resume() {
        let mut a = with_budget(1, 1500);
        let now = Instant::now();
        a.push("qalqan.events.mof", 1, 7, Some(0), "slow", now);
        drain(&mut a, now);
        for i in 10..1600 {
            a.push("qalqan.events.mof", 0, i, Some(100 * S), "fast", now);
        }
        assert_eq!(a.take_pauses().len(), 1);
        let (rewind, paused) = a.clear();
        assert_eq!(rewind, vec![("qalqan.events.mof".to_owned(), 0, 10)]);
        assert_eq!(paused, vec![("qalqan.events.mof".to_owned(), 0)]);
        assert_eq!(a.queued(), 0);
        assert!(a.pop(now).is_none());
    }

    #[test]
    fn an_assigned_partition_that_has_not_delivered_yet_holds_its_agency_back() {
        let mut a = aligner(1);
        let now = Instant::now();
        a.expect("qalqan.events.mof", 1, 500, now);
        a.push("qalqan.events.mof", 0, 0, Some(100 * S), "e", now);
        a.refresh(nothing_at_end, i64::MAX);
        assert!(
            drain(&mut a, now).is_empty(),
            "its first events may be older"
        );
        // Read from offset 500 of 501: nothing to wait for.
        a.refresh(|_, p| Some(if p == 1 { 501 } else { i64::MAX }), i64::MAX);
        assert_eq!(drain(&mut a, now), vec![(0, 0)]);
    }

    #[test]
    fn switched_off_it_releases_in_poll_order() {
        let mut a = aligner(0);
        assert!(!a.enabled());
        let now = Instant::now();
        a.push("qalqan.events.mof", 1, 0, Some(10 * S), "slow", now);
        drain(&mut a, now);
        a.push("qalqan.events.mof", 0, 0, Some(100 * S), "fast", now);
        a.refresh(nothing_at_end, i64::MAX);
        assert_eq!(drain(&mut a, now), vec![(0, 0)]);
    }
}
