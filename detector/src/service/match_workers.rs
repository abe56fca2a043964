//! Stage 1's stateless half on worker threads: decoding messages and
//! finding their Sigma matches.
//!
//! Decoding and rule evaluation are most of stage 1's work per event and
//! need no state, so they run on `detector.match_workers` threads while the
//! stage's own thread polls Kafka and does everything that keeps state
//! (collector health, suppression, signals, the transaction) in message
//! order. Messages go to the workers in chunks, round robin, and the
//! results are taken back in the order the chunks were handed out, so the
//! stateful half sees exactly the sequence a single thread would.
//!
//! With `match_workers = 0` the same interface evaluates in place; the
//! stage then evaluates each message as it is polled
//! ([`MatchWorkers::evaluate_now`]).

use std::collections::VecDeque;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use qalqan_sigma::engine::{Matches, Scratch};
use rdkafka::message::BorrowedMessage;
use rdkafka::Message;

use crate::health::is_heartbeat;
use crate::pipeline::rules::LoadedRules;
use crate::service::decode::{Decoded, Decoder, Undecodable};

/// A Kafka message, copied out of the consumer's buffers.
pub struct OwnedMessage {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
}

impl OwnedMessage {
    pub fn view(&self) -> MessageView<'_> {
        MessageView {
            topic: &self.topic,
            partition: self.partition,
            offset: self.offset,
            key: self.key.as_deref(),
            payload: self.payload.as_deref(),
        }
    }
}

/// A message as the stateful half reads it: borrowed from the consumer
/// (evaluated in place) or from an [`OwnedMessage`] (from a worker).
#[derive(Clone, Copy)]
pub struct MessageView<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
}

impl<'a> MessageView<'a> {
    pub fn of(msg: &'a BorrowedMessage<'_>) -> MessageView<'a> {
        MessageView {
            topic: msg.topic(),
            partition: msg.partition(),
            offset: msg.offset(),
            key: msg.key(),
            payload: msg.payload(),
        }
    }
}

/// A message's decoded event and Sigma matches, or why it could not be
/// decoded.
pub type Outcome = Result<(Decoded, Matches), Undecodable>;

/// A message with its [`Outcome`].
pub struct Evaluated {
    pub message: OwnedMessage,
    pub outcome: Outcome,
}

struct Job {
    rules: Arc<LoadedRules>,
    chunk: Vec<OwnedMessage>,
}

/// A decoded event and its matches once the stateful half is done with
/// them: built on a worker, and best freed there (see
/// [`MatchWorkers::recycle`]).
pub type Spent = (Decoded, Matches);

/// What a worker is sent.
enum Work {
    Evaluate(Job),
    /// Events to free.
    Free(Vec<Spent>),
}

/// Jobs and frees a worker's queue holds. Jobs are limited by the stage
/// (it waits when [`MatchWorkers::capacity`] chunks are out), so the
/// room beyond that is for frees, which are dropped at the stage when
/// it is full.
const LANE_QUEUE: usize = 8;

/// The worker threads, or the in-place evaluator when there are none.
pub struct MatchWorkers {
    decoder: Arc<Decoder>,
    /// Per worker: where its jobs go and where its results come from.
    lanes: Vec<(SyncSender<Work>, Receiver<Vec<Evaluated>>)>,
    next_lane: usize,
    /// Lanes of the chunks handed out and not yet taken back, oldest first.
    pending: VecDeque<usize>,
    /// Results evaluated in place (no workers).
    done: VecDeque<Vec<Evaluated>>,
    scratch: Scratch,
    /// Interned topic names, so a message does not allocate its topic.
    topics: Vec<Arc<str>>,
}

/// Messages per chunk: large enough that hand-over costs nothing per
/// event, small enough that a slow trickle is not held back.
pub const CHUNK: usize = 256;

impl MatchWorkers {
    pub fn new(workers: usize, decoder: Arc<Decoder>) -> anyhow::Result<MatchWorkers> {
        let mut lanes = Vec::with_capacity(workers);
        for i in 0..workers {
            let (job_tx, job_rx) = sync_channel::<Work>(LANE_QUEUE);
            let (out_tx, out_rx) = sync_channel::<Vec<Evaluated>>(2);
            let decoder = Arc::clone(&decoder);
            std::thread::Builder::new()
                .name(format!("qalqan-match-{i}"))
                .spawn(move || {
                    let mut scratch = Scratch::default();
                    // Ends when the stage drops its sender.
                    while let Ok(work) = job_rx.recv() {
                        match work {
                            Work::Evaluate(job) => {
                                let done = evaluate(&decoder, &job.rules, &mut scratch, job.chunk);
                                if out_tx.send(done).is_err() {
                                    break;
                                }
                            }
                            Work::Free(spent) => drop(spent),
                        }
                    }
                })
                .map_err(|e| anyhow::anyhow!("cannot start a stage 1 worker thread: {e}"))?;
            lanes.push((job_tx, out_rx));
        }
        Ok(MatchWorkers {
            decoder,
            lanes,
            next_lane: 0,
            pending: VecDeque::new(),
            done: VecDeque::new(),
            scratch: Scratch::default(),
            topics: Vec::new(),
        })
    }

    /// Whether chunks are evaluated on the caller's thread (no workers):
    /// then [`MatchWorkers::evaluate_now`] is the cheaper way, without a
    /// copy of each message and without a chunk of decoded events held
    /// (and gone cold in the cache) before the stateful half reads them.
    pub fn in_place(&self) -> bool {
        self.lanes.is_empty()
    }

    /// Evaluates one message on the caller's thread.
    pub fn evaluate_now(&mut self, rules: &LoadedRules, message: MessageView<'_>) -> Outcome {
        evaluate_one(&self.decoder, rules, &mut self.scratch, message)
    }

    /// Copies a consumed message for hand-over.
    pub fn own(&mut self, msg: &BorrowedMessage<'_>) -> OwnedMessage {
        // rdkafka checks the topic name's UTF-8 on every `topic()` call.
        let name = msg.topic();
        let topic = match self.topics.iter().find(|t| ***t == *name) {
            Some(t) => Arc::clone(t),
            None => {
                let t: Arc<str> = Arc::from(name);
                self.topics.push(Arc::clone(&t));
                t
            }
        };
        OwnedMessage {
            topic,
            partition: msg.partition(),
            offset: msg.offset(),
            key: msg.key().map(<[u8]>::to_vec),
            payload: msg.payload().map(<[u8]>::to_vec),
        }
    }

    /// Hands a chunk over (or evaluates it now when there are no workers).
    pub fn submit(&mut self, rules: &Arc<LoadedRules>, chunk: Vec<OwnedMessage>) {
        if chunk.is_empty() {
            return;
        }
        if self.lanes.is_empty() {
            let done = evaluate(&self.decoder, rules, &mut self.scratch, chunk);
            self.done.push_back(done);
            return;
        }
        let lane = self.next_lane;
        self.next_lane = (self.next_lane + 1) % self.lanes.len();
        let job = Job {
            rules: Arc::clone(rules),
            chunk,
        };
        match self.lanes[lane].0.send(Work::Evaluate(job)) {
            Ok(()) => self.pending.push_back(lane),
            Err(std::sync::mpsc::SendError(back)) => {
                // The worker is gone (it cannot panic on input, but if it
                // did): evaluate here rather than lose the chunk.
                tracing::error!("stage 1 worker {lane} stopped; evaluating in place");
                let Work::Evaluate(job) = back else { return };
                let done = evaluate(&self.decoder, &job.rules, &mut self.scratch, job.chunk);
                self.done.push_back(done);
            }
        }
    }

    /// Frees events on a worker: they were allocated there, and freeing
    /// them on the stage's thread took the allocator's slower path for
    /// memory of another thread, on the thread everything else waits for
    /// (about a tenth of its time in the service bench). With no workers,
    /// or a full queue, they are freed here.
    pub fn recycle(&mut self, spent: Vec<Spent>) {
        if spent.is_empty() {
            return;
        }
        if let Some((tx, _)) = self.lanes.get(self.next_lane) {
            // Full or gone: `spent` comes back and is dropped here.
            let _ = tx.try_send(Work::Free(spent));
        }
    }

    /// Chunks handed out and not yet taken back.
    pub fn outstanding(&self) -> usize {
        self.pending.len() + self.done.len()
    }

    /// Chunks that may be outstanding before the stage waits for one.
    pub fn capacity(&self) -> usize {
        (self.lanes.len() * 2).max(1)
    }

    /// The oldest outstanding chunk's results, waiting for them if needed;
    /// `None` when nothing is outstanding. An error means a worker died
    /// holding a chunk: the batch must be aborted and read again.
    pub fn next_done(&mut self) -> anyhow::Result<Option<Vec<Evaluated>>> {
        if let Some(done) = self.done.pop_front() {
            return Ok(Some(done));
        }
        let Some(lane) = self.pending.pop_front() else {
            return Ok(None);
        };
        self.lanes[lane]
            .1
            .recv()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("stage 1 worker {lane} stopped holding a chunk"))
    }
}

/// Decodes a chunk and finds each event's Sigma matches.
fn evaluate(
    decoder: &Decoder,
    rules: &LoadedRules,
    scratch: &mut Scratch,
    chunk: Vec<OwnedMessage>,
) -> Vec<Evaluated> {
    chunk
        .into_iter()
        .map(|message| {
            let outcome = evaluate_one(decoder, rules, scratch, message.view());
            Evaluated { message, outcome }
        })
        .collect()
}

/// Decodes one message and finds its event's Sigma matches.
fn evaluate_one(
    decoder: &Decoder,
    rules: &LoadedRules,
    scratch: &mut Scratch,
    m: MessageView<'_>,
) -> Outcome {
    decoder
        .decode(m.topic, m.partition, m.offset, m.payload)
        .map(|d| {
            let matches = if is_heartbeat(&d.event) {
                Matches::new()
            } else {
                rules.sigma.evaluate_with(&d.event, scratch)
            };
            (d, matches)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TopicsSection;
    use crate::pipeline::RuleSources;
    use qalqan_core::parse::{ParseOptions, Parser};
    use std::path::PathBuf;

    fn project_rules() -> Arc<LoadedRules> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let pipelines = ["linux", "network", "web"]
            .iter()
            .map(|p| root.join(format!("rules/pipelines/qalqan-{p}.yml")))
            .collect();
        let loaded = LoadedRules::load(&RuleSources {
            paths: vec![root.join("rules")],
            pipelines,
            ..RuleSources::default()
        })
        .expect("the project's rules load");
        Arc::new(loaded)
    }

    /// The demo scenario as collector events, with broken messages mixed in.
    fn messages() -> Vec<OwnedMessage> {
        let parser = Parser::default();
        let start = chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
        let topic: Arc<str> = Arc::from("qalqan.events.mof");
        crate::demo::scenario(start, 7)
            .into_iter()
            .enumerate()
            .map(|(i, line)| {
                let payload = if i % 97 == 5 {
                    b"{broken".to_vec()
                } else {
                    parser
                        .parse(line.line.as_bytes(), line.at)
                        .event
                        .to_json_string()
                        .into_bytes()
                };
                OwnedMessage {
                    topic: Arc::clone(&topic),
                    partition: (i % 3) as i32,
                    offset: i as i64,
                    key: None,
                    payload: Some(payload),
                }
            })
            .collect()
    }

    /// (offset, decoded event id or the dead-letter kind, matched rules).
    fn run(workers: usize, rules: &Arc<LoadedRules>) -> Vec<(i64, String, Vec<RuleIdx>)> {
        let decoder = Arc::new(
            Decoder::new(&TopicsSection::default(), ParseOptions::default()).expect("topics"),
        );
        let mut pool = MatchWorkers::new(workers, decoder).expect("workers start");
        let mut got = Vec::new();
        let mut take = |done: Vec<Evaluated>| {
            for e in done {
                let (what, matches) = match e.outcome {
                    Ok((d, m)) => (d.event_id, m.to_vec()),
                    Err(bad) => (bad.kind.to_owned(), Vec::new()),
                };
                got.push((e.message.offset, what, matches));
            }
        };
        // Uneven chunks, and results taken back while more are out.
        for (i, chunk) in messages().chunks(37 + workers).enumerate() {
            pool.submit(rules, chunk.iter().map(copy).collect());
            if i % 3 == 0 {
                while pool.outstanding() >= pool.capacity() {
                    if let Some(done) = pool.next_done().expect("no worker lost") {
                        take(done);
                    }
                }
            }
        }
        while let Some(done) = pool.next_done().expect("no worker lost") {
            take(done);
        }
        got
    }

    fn copy(m: &OwnedMessage) -> OwnedMessage {
        OwnedMessage {
            topic: Arc::clone(&m.topic),
            partition: m.partition,
            offset: m.offset,
            key: m.key.clone(),
            payload: m.payload.clone(),
        }
    }

    use qalqan_sigma::RuleIdx;

    #[test]
    fn workers_give_the_in_place_results_in_message_order() {
        let rules = project_rules();
        let in_place = run(0, &rules);
        assert_eq!(in_place.len(), messages().len());
        assert!(
            in_place.iter().filter(|(_, _, m)| !m.is_empty()).count() > 20,
            "the scenario matches rules"
        );
        assert!(in_place
            .iter()
            .any(|(_, what, _)| what == "undecodable_event"));
        let decoder = Arc::new(
            Decoder::new(&TopicsSection::default(), ParseOptions::default()).expect("topics"),
        );
        let mut now = MatchWorkers::new(0, decoder).expect("in place");
        assert!(now.in_place());
        let one_by_one: Vec<_> = messages()
            .iter()
            .map(|m| {
                let (what, matches) = match now.evaluate_now(&rules, m.view()) {
                    Ok((d, m)) => (d.event_id, m.to_vec()),
                    Err(bad) => (bad.kind.to_owned(), Vec::new()),
                };
                (m.offset, what, matches)
            })
            .collect();
        assert_eq!(one_by_one, in_place);
        for workers in [1, 3] {
            let got = run(workers, &rules);
            assert_eq!(got.len(), in_place.len(), "{workers} workers");
            for (g, want) in got.iter().zip(&in_place) {
                assert_eq!(g, want, "{workers} workers");
            }
        }
    }
}
