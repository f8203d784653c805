//! Cluster Autoscaler's `BestOptionsRequest` read in place, and the
//! `BestOptionsResponse` written from the request's own bytes.
//!
//! Decoded with prost, a 100-option request becomes 100,000 `Bytes` handles,
//! one per pod entry, each a reference count taken and later dropped, in
//! vectors grown entry by entry; that alone cost about a third of a call.
//! Here the outer message is walked once and each pod entry is kept as a
//! byte range of the one request buffer. The wire rules are prost's, so a
//! request reads here exactly as prost reads it (`reads_as_prost_does` in
//! this module checks that over generated requests, unknown fields and
//! repeated singular fields included), and a buffer prost rejects is
//! rejected here too, with the field and byte offset named.
//!
//! Cluster Autoscaler lists the same pending pods under every option they
//! fit, so consecutive options usually carry the same run of pod entries,
//! byte for byte. Where an option's pod entries begin with exactly the bytes
//! of the previous option's leading run, that run is matched with one
//! `memcmp` and its entries are taken over (identical bytes read as
//! identical entries) instead of walking 1,000 entry headers one cache miss
//! at a time; [`OptionView::shared_pods`] tells the converter so it can
//! reuse the previous option's converted pods.
//!
//! The reply needs no encoder: `BestOptionsResponse.options` has the same
//! field number and message type as `BestOptionsRequest.options`, so the
//! reply is each kept option's record copied from the request.

use prost::bytes::{BufMut, Bytes, BytesMut};
use std::collections::HashMap;
use std::ops::Range;

/// prost's limit on nested messages and groups; a request nested deeper is
/// rejected as prost rejects it.
const RECURSION_LIMIT: u32 = 100;

/// A byte range of the request buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    start: usize,
    end: usize,
}

impl Span {
    fn range(self) -> Range<usize> {
        self.start..self.end
    }
}

/// One option, read in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionView {
    /// The whole encoded `Option` message, echoed in the reply.
    message: Span,
    /// `nodeGroupId`.
    pub node_group_id: String,
    /// `nodeCount`.
    pub node_count: i32,
    /// `debug`.
    pub debug: String,
    /// This option's pod entries: a range of [`RequestView::pods`].
    pods: Range<usize>,
    /// How many leading pod entries are byte for byte the previous option's.
    shared: usize,
    /// `similarNodeGroupIds` (carried, not used by the chain).
    pub similar_node_group_ids: Vec<String>,
}

impl OptionView {
    /// How many of this option's first pod entries are, byte for byte, the
    /// previous option's first pod entries (0 for the first option).
    #[must_use]
    pub fn shared_pods(&self) -> usize {
        self.shared
    }
}

/// An option's leading run of pod entries: consecutive in the buffer with
/// nothing between them, from its first pod entry on.
#[derive(Clone, Copy, Debug)]
struct PodRun {
    /// The run's bytes, keys and lengths included.
    bytes: Span,
    /// Its first entry in [`RequestView::pods`].
    first: usize,
    /// How many entries it holds.
    count: usize,
}

/// Adds `count` pod entries occupying `entries` to an option's leading run:
/// they start it, extend it when nothing stands between it and them, or
/// (after another field) fall outside it. `first` is the option's first
/// entry in [`RequestView::pods`].
fn grow_run(run: &mut Option<PodRun>, first: usize, entries: Span, count: usize) {
    match run {
        None => {
            *run = Some(PodRun {
                bytes: entries,
                first,
                count,
            });
        }
        Some(run) if run.bytes.end == entries.start => {
            run.bytes.end = entries.end;
            run.count += count;
        }
        Some(_) => {}
    }
}

/// A `BestOptionsRequest` read in place.
#[derive(Clone, Debug)]
pub struct RequestView {
    buf: Bytes,
    options: Vec<OptionView>,
    /// Every option's pod entries, option after option.
    pods: Vec<Span>,
    node_map: HashMap<String, Span>,
    /// The last option's leading pod run, while parsing.
    run: Option<PodRun>,
}

/// The request is not a well-formed `BestOptionsRequest`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("BestOptionsRequest is malformed: {field}: {problem} (byte {offset})")]
pub struct WireError {
    /// Where, e.g. `options[3].pod` or `nodeMap entry 2`.
    pub field: String,
    /// What was wrong.
    pub problem: &'static str,
    /// Offset into the request where it was found.
    pub offset: usize,
}

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// A cursor over one message of the buffer: `pos..end`.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], span: Span) -> Self {
        Reader {
            buf,
            pos: span.start,
            end: span.end,
        }
    }

    fn more(&self) -> bool {
        self.pos < self.end
    }

    /// A base-128 varint as prost reads it: at most ten bytes, the tenth
    /// no more than 1.
    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut value = 0u64;
        for count in 0..10 {
            let Some(&byte) = self.buf[..self.end].get(self.pos) else {
                return Err("varint runs past the end");
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (count * 7);
            if byte < 0x80 {
                return if count == 9 && byte > 1 {
                    Err("varint overflows 64 bits")
                } else {
                    Ok(value)
                };
            }
        }
        Err("varint longer than ten bytes")
    }

    /// A field key: (field number, wire type).
    fn key(&mut self) -> Result<(u32, u8), &'static str> {
        let key = self.varint()?;
        let key = u32::try_from(key).map_err(|_| "field key over 32 bits")?;
        let wire = (key & 7) as u8;
        if wire > FIXED32 {
            return Err("invalid wire type");
        }
        if key >> 3 == 0 {
            return Err("field number 0");
        }
        Ok((key >> 3, wire))
    }

    /// Skips `n` bytes.
    fn skip_bytes(&mut self, n: u64) -> Result<(), &'static str> {
        match usize::try_from(n) {
            Ok(n) if n <= self.end - self.pos => {
                self.pos += n;
                Ok(())
            }
            _ => Err("length runs past the end of the message"),
        }
    }

    /// A length-delimited value.
    fn delimited(&mut self) -> Result<Span, &'static str> {
        let len = self.varint()?;
        let start = self.pos;
        self.skip_bytes(len)?;
        Ok(Span {
            start,
            end: self.pos,
        })
    }

    fn string(&mut self) -> Result<&'a str, &'static str> {
        let span = self.delimited()?;
        std::str::from_utf8(&self.buf[span.range()]).map_err(|_| "string is not UTF-8")
    }

    /// Skips a field this reader does not keep; `budget` is what remains of
    /// the recursion limit.
    fn skip(&mut self, field: u32, wire: u8, budget: u32) -> Result<(), &'static str> {
        if budget == 0 {
            return Err("nested too deeply");
        }
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.skip_bytes(8),
            LEN => self.delimited().map(drop),
            FIXED32 => self.skip_bytes(4),
            START_GROUP => loop {
                let (inner, inner_wire) = self.key()?;
                if inner_wire == END_GROUP {
                    if inner != field {
                        return Err("end of group does not match its start");
                    }
                    return Ok(());
                }
                self.skip(inner, inner_wire, budget - 1)?;
            },
            _ => Err("end of group without a start"),
        }
    }
}

fn expect(wire: u8, wanted: u8) -> Result<(), &'static str> {
    if wire == wanted {
        Ok(())
    } else {
        Err("unexpected wire type for the field")
    }
}

impl RequestView {
    /// Reads the encoded request in `buf`, which stays shared, not copied.
    pub fn parse(buf: Bytes) -> Result<RequestView, WireError> {
        let mut view = RequestView {
            buf,
            options: Vec::new(),
            pods: Vec::new(),
            node_map: HashMap::new(),
            run: None,
        };
        let bytes = view.buf.clone();
        let mut r = Reader::new(
            &bytes,
            Span {
                start: 0,
                end: bytes.len(),
            },
        );
        while r.more() {
            let at = r.pos;
            let fail = |field: String, at: usize| {
                move |problem| WireError {
                    field,
                    problem,
                    offset: at,
                }
            };
            let (field, wire) = r.key().map_err(fail("field key".into(), at))?;
            match field {
                1 => {
                    let name = || format!("options[{}]", view.options.len());
                    expect(wire, LEN).map_err(fail(name(), at))?;
                    let span = r.delimited().map_err(fail(name(), at))?;
                    view.option(&bytes, span)?;
                }
                2 => {
                    // prost reads a map entry's length without checking the
                    // wire type; so does this, to read every request alike.
                    let name = || format!("nodeMap entry {}", view.node_map.len());
                    let span = r.delimited().map_err(fail(name(), at))?;
                    let (id, node) =
                        map_entry(&bytes, span).map_err(|(problem, offset)| WireError {
                            field: name(),
                            problem,
                            offset,
                        })?;
                    view.node_map.insert(id.to_owned(), node);
                }
                _ => r
                    .skip(field, wire, RECURSION_LIMIT)
                    .map_err(fail(format!("unknown field {field}"), at))?,
            }
        }
        Ok(view)
    }

    /// Reads one `Option` message at `span`.
    fn option(&mut self, bytes: &[u8], span: Span) -> Result<(), WireError> {
        let index = self.options.len();
        let first_pod = self.pods.len();
        let mut option = OptionView {
            message: span,
            node_group_id: String::new(),
            node_count: 0,
            debug: String::new(),
            pods: first_pod..first_pod,
            shared: 0,
            similar_node_group_ids: Vec::new(),
        };
        let previous_run = self.run.take();
        // This option's leading run of pod entries.
        let mut run: Option<PodRun> = None;
        let mut r = Reader::new(bytes, span);
        while r.more() {
            let at = r.pos;
            if run.is_none()
                && let Some(prev) = previous_run
                && let Some(here) =
                    bytes[..span.end].get(at..at + (prev.bytes.end - prev.bytes.start))
                && here == &bytes[prev.bytes.range()]
            {
                // The same bytes parse as the same pod entries, shifted.
                let shift = at - prev.bytes.start;
                self.pods
                    .extend_from_within(prev.first..prev.first + prev.count);
                for s in &mut self.pods[first_pod..] {
                    s.start += shift;
                    s.end += shift;
                }
                r.pos = at + here.len();
                option.shared = prev.count;
                grow_run(
                    &mut run,
                    first_pod,
                    Span {
                        start: at,
                        end: r.pos,
                    },
                    prev.count,
                );
                continue;
            }
            let mut field_name = "field key";
            let read = (|| -> Result<(), &'static str> {
                let (field, wire) = r.key()?;
                match field {
                    1 => {
                        field_name = "nodeGroupId";
                        expect(wire, LEN)?;
                        r.string()?.clone_into(&mut option.node_group_id);
                    }
                    2 => {
                        field_name = "nodeCount";
                        expect(wire, VARINT)?;
                        // int32 keeps the low 32 bits, as in every protobuf
                        // implementation.
                        #[allow(clippy::cast_possible_truncation)]
                        let count = r.varint()? as i32;
                        option.node_count = count;
                    }
                    3 => {
                        field_name = "debug";
                        expect(wire, LEN)?;
                        r.string()?.clone_into(&mut option.debug);
                    }
                    4 => {
                        field_name = "pod";
                        expect(wire, LEN)?;
                        self.pods.push(r.delimited()?);
                        grow_run(
                            &mut run,
                            first_pod,
                            Span {
                                start: at,
                                end: r.pos,
                            },
                            1,
                        );
                    }
                    5 => {
                        field_name = "similarNodeGroupIds";
                        expect(wire, LEN)?;
                        option.similar_node_group_ids.push(r.string()?.to_owned());
                    }
                    _ => {
                        field_name = "unknown field";
                        r.skip(field, wire, RECURSION_LIMIT - 1)?;
                    }
                }
                Ok(())
            })();
            read.map_err(|problem| WireError {
                field: format!("options[{index}].{field_name}"),
                problem,
                offset: at,
            })?;
        }
        option.pods.end = self.pods.len();
        self.options.push(option);
        self.run = run;
        Ok(())
    }

    /// The options, in request order.
    #[must_use]
    pub fn options(&self) -> &[OptionView] {
        &self.options
    }

    /// The encoded pod entries of `option`, in order.
    pub fn pods<'s>(&'s self, option: &OptionView) -> impl ExactSizeIterator<Item = &'s [u8]> + 's {
        self.pods[option.pods.clone()]
            .iter()
            .map(|s| &self.buf[s.range()])
    }

    /// The encoded template nodes by node group id.
    pub fn node_map(&self) -> impl ExactSizeIterator<Item = (&str, &[u8])> {
        self.node_map
            .iter()
            .map(|(id, s)| (id.as_str(), &self.buf[s.range()]))
    }

    /// The encoded `BestOptionsResponse` carrying the options at `indices`,
    /// each byte for byte as the request carried it.
    #[must_use]
    pub fn reply(&self, indices: impl IntoIterator<Item = usize>) -> Bytes {
        let mut out = BytesMut::new();
        for i in indices {
            let m = self.options[i].message;
            out.put_u8(0x0a); // field 1, length-delimited
            prost::encoding::encode_varint((m.end - m.start) as u64, &mut out);
            out.put_slice(&self.buf[m.range()]);
        }
        out.freeze()
    }

    /// The same view with no option marked as sharing pods with the one
    /// before, so the converter takes every entry on its own.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn without_sharing(mut self) -> RequestView {
        for o in &mut self.options {
            o.shared = 0;
        }
        self
    }

    /// The reply carrying every option.
    #[must_use]
    pub fn reply_all(&self) -> Bytes {
        self.reply(0..self.options.len())
    }
}

/// Reads one `nodeMap` entry (`key = 1`, `value = 2`; a missing one is
/// empty, a repeated one keeps the last).
fn map_entry(bytes: &[u8], span: Span) -> Result<(&str, Span), (&'static str, usize)> {
    let mut key = "";
    let mut value = Span {
        start: span.start,
        end: span.start,
    };
    let mut r = Reader::new(bytes, span);
    while r.more() {
        let at = r.pos;
        let read = (|| -> Result<(), &'static str> {
            let (field, wire) = r.key()?;
            match field {
                1 => {
                    expect(wire, LEN)?;
                    key = r.string()?;
                }
                2 => {
                    expect(wire, LEN)?;
                    value = r.delimited()?;
                }
                _ => r.skip(field, wire, RECURSION_LIMIT - 1)?,
            }
            Ok(())
        })();
        read.map_err(|problem| (problem, at))?;
    }
    Ok((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::proto;
    use proptest::collection::{btree_map, vec};
    use proptest::prelude::*;
    use prost::Message;

    /// The request as prost reads it, to compare with the view.
    fn as_proto(view: &RequestView) -> proto::BestOptionsRequest {
        proto::BestOptionsRequest {
            options: view
                .options()
                .iter()
                .map(|o| proto::Option {
                    node_group_id: o.node_group_id.clone(),
                    node_count: o.node_count,
                    debug: o.debug.clone(),
                    pod: view.pods(o).map(Bytes::copy_from_slice).collect(),
                    similar_node_group_ids: o.similar_node_group_ids.clone(),
                })
                .collect(),
            node_map: view
                .node_map()
                .map(|(k, v)| (k.to_owned(), Bytes::copy_from_slice(v)))
                .collect(),
        }
    }

    /// A field prost does not know, in any wire type.
    fn unknown() -> impl Strategy<Value = Vec<u8>> {
        let number = 6u32..40;
        prop_oneof![
            (number.clone(), any::<u64>()).prop_map(|(n, v)| {
                let mut b = Vec::new();
                prost::encoding::encode_key(n, prost::encoding::WireType::Varint, &mut b);
                prost::encoding::encode_varint(v, &mut b);
                b
            }),
            (number.clone(), vec(any::<u8>(), 0..9)).prop_map(|(n, v)| {
                let mut b = Vec::new();
                prost::encoding::bytes::encode(n, &v, &mut b);
                b
            }),
            (number.clone(), any::<u32>()).prop_map(|(n, v)| {
                let mut b = Vec::new();
                prost::encoding::fixed32::encode(n, &v, &mut b);
                b
            }),
            (number.clone(), any::<u64>()).prop_map(|(n, v)| {
                let mut b = Vec::new();
                prost::encoding::fixed64::encode(n, &v, &mut b);
                b
            }),
            (number, any::<u64>()).prop_map(|(n, v)| {
                // A group holding one varint field.
                let mut b = Vec::new();
                prost::encoding::encode_key(n, prost::encoding::WireType::StartGroup, &mut b);
                prost::encoding::uint64::encode(1, &v, &mut b);
                prost::encoding::encode_key(n, prost::encoding::WireType::EndGroup, &mut b);
                b
            }),
        ]
    }

    /// One field of an `Option`, known or not, so fields come in any order
    /// and singular ones may repeat.
    fn option_field() -> impl Strategy<Value = Vec<u8>> {
        let text = "[a-z0-9-]{0,6}";
        prop_oneof![
            text.prop_map(|s| {
                let mut b = Vec::new();
                prost::encoding::string::encode(1, &s.to_owned(), &mut b);
                b
            }),
            any::<i64>().prop_map(|n| {
                // Written as int64 so counts over 32 bits are seen too.
                let mut b = Vec::new();
                prost::encoding::int64::encode(2, &n, &mut b);
                b
            }),
            text.prop_map(|s| {
                let mut b = Vec::new();
                prost::encoding::string::encode(3, &s.to_owned(), &mut b);
                b
            }),
            // Pods from a small pool, so entries repeat.
            (0..4u8).prop_map(|k| {
                let mut b = Vec::new();
                prost::encoding::bytes::encode(4, &vec![k; usize::from(k) * 3], &mut b);
                b
            }),
            text.prop_map(|s| {
                let mut b = Vec::new();
                prost::encoding::string::encode(5, &s.to_owned(), &mut b);
                b
            }),
            unknown(),
        ]
    }

    fn request() -> impl Strategy<Value = Vec<u8>> {
        let option = vec(option_field(), 0..8).prop_map(|fields| {
            let body = fields.concat();
            let mut b = Vec::new();
            prost::encoding::bytes::encode(1, &body, &mut b);
            b
        });
        let entry = (
            proptest::option::of("[a-c]{0,2}"),
            proptest::option::of(vec(any::<u8>(), 0..6)),
            vec(unknown(), 0..2),
        )
            .prop_map(|(key, value, extra)| {
                let mut body = Vec::new();
                if let Some(v) = &value {
                    prost::encoding::bytes::encode(2, v, &mut body);
                }
                body.extend(extra.concat());
                if let Some(k) = key {
                    prost::encoding::string::encode(1, &k, &mut body);
                }
                let mut b = Vec::new();
                prost::encoding::bytes::encode(2, &body, &mut b);
                b
            });
        vec(prop_oneof![4 => option, 2 => entry, 1 => unknown()], 0..10)
            .prop_map(|fields| fields.concat())
    }

    /// Options as Cluster Autoscaler builds them: each lists a prefix of
    /// one shared list of pods (often all of it), some with other fields
    /// before, between or after the pods, and some with pods of their own.
    fn shared_request() -> impl Strategy<Value = Vec<u8>> {
        let pod = vec(0..3u8, 1..4);
        let option = (
            any::<prop::sample::Index>(),
            vec(option_field(), 0..2),
            vec(option_field(), 0..3),
            proptest::option::of(any::<prop::sample::Index>()),
        );
        (vec(pod, 1..6), vec(option, 0..8)).prop_map(|(pods, options)| {
            let entries: Vec<Vec<u8>> = pods
                .iter()
                .map(|p| {
                    let mut b = Vec::new();
                    prost::encoding::bytes::encode(4, p, &mut b);
                    b
                })
                .collect();
            let mut out = Vec::new();
            for (take, before, after, split) in options {
                let n = take.index(entries.len() + 1);
                let mut body = before.concat();
                let mut listed = entries[..n].to_vec();
                if let Some(at) = split {
                    // A field in the middle of the pods ends the run there.
                    listed.insert(at.index(listed.len() + 1), after.concat());
                } else {
                    listed.push(after.concat());
                }
                body.extend(listed.concat());
                prost::encoding::bytes::encode(1, &body, &mut out);
            }
            out
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Options whose pods repeat the previous option's read as prost
        /// reads them, and what is marked shared is byte for byte the same.
        #[test]
        fn shared_pod_runs_read_as_prost_does(bytes in shared_request()) {
            let expected = proto::BestOptionsRequest::decode(bytes.as_slice()).unwrap();
            let view = RequestView::parse(Bytes::from(bytes)).unwrap();
            prop_assert_eq!(&as_proto(&view), &expected);
            for (i, o) in view.options().iter().enumerate() {
                let n = o.shared_pods();
                if n > 0 {
                    let before: Vec<&[u8]> = view.pods(&view.options()[i - 1]).take(n).collect();
                    let here: Vec<&[u8]> = view.pods(o).take(n).collect();
                    prop_assert_eq!(before.len(), n);
                    prop_assert_eq!(here, before);
                }
            }
        }

        /// Whatever the field order, repeats and unknown fields, the view
        /// holds what prost decodes, and the reply decodes to the options
        /// it names.
        #[test]
        fn reads_as_prost_does(bytes in request(), pick in vec(any::<prop::sample::Index>(), 0..4)) {
            let expected = proto::BestOptionsRequest::decode(bytes.as_slice()).unwrap();
            let view = RequestView::parse(Bytes::from(bytes)).unwrap();
            prop_assert_eq!(&as_proto(&view), &expected);
            if !expected.options.is_empty() {
                let indices: Vec<usize> =
                    pick.iter().map(|i| i.index(expected.options.len())).collect();
                let reply = proto::BestOptionsResponse::decode(view.reply(indices.clone())).unwrap();
                let wanted: Vec<_> = indices.iter().map(|&i| expected.options[i].clone()).collect();
                prop_assert_eq!(reply.options, wanted);
            }
            let all = proto::BestOptionsResponse::decode(view.reply_all()).unwrap();
            prop_assert_eq!(all.options, expected.options);
        }

        /// Cut short or with a byte changed, a request is rejected exactly
        /// when prost rejects it, and read as prost reads it otherwise.
        #[test]
        fn damaged_requests_agree_with_prost(
            bytes in request(),
            cut in any::<prop::sample::Index>(),
            flip in proptest::option::of((any::<prop::sample::Index>(), any::<u8>())),
        ) {
            let mut bytes = bytes;
            if let Some((at, value)) = flip && !bytes.is_empty() {
                let at = at.index(bytes.len());
                bytes[at] = value;
            }
            bytes.truncate(cut.index(bytes.len() + 1));
            let prost = proto::BestOptionsRequest::decode(bytes.as_slice());
            match (RequestView::parse(Bytes::from(bytes)), prost) {
                (Ok(view), Ok(expected)) => prop_assert_eq!(as_proto(&view), expected),
                (Err(_), Err(_)) => {}
                (ours, theirs) => prop_assert!(false, "view {:?}, prost {:?}", ours.map(|_| ()), theirs.map(|_| ())),
            }
        }

        /// Large maps of templates read back whole.
        #[test]
        fn node_maps_read_back(map in btree_map("[a-z]{1,4}", vec(any::<u8>(), 0..20), 0..20)) {
            let request = proto::BestOptionsRequest {
                options: Vec::new(),
                node_map: map.iter().map(|(k, v)| (k.clone(), Bytes::from(v.clone()))).collect(),
            };
            let view = RequestView::parse(request.encode_to_vec().into()).unwrap();
            prop_assert_eq!(as_proto(&view), request);
        }
    }

    #[test]
    fn malformed_requests_say_what_and_where() {
        let cases: [(&[u8], &str); 9] = [
            (
                &[0x0a, 0x05, 0x0a],
                "options[0]: length runs past the end of the message (byte 0)",
            ),
            (&[0x08], "options[0]: unexpected wire type"),
            (
                &[0x0a, 0x02, 0x10, 0x80],
                "options[0].nodeCount: varint runs past the end (byte 2)",
            ),
            (
                &[0x0a, 0x02, 0x0a, 0x01],
                "options[0].nodeGroupId: length runs past the end",
            ),
            (
                &[0x0a, 0x03, 0x0a, 0x01, 0xff],
                "options[0].nodeGroupId: string is not UTF-8",
            ),
            (
                &[0x0a, 0x02, 0x22, 0x05],
                "options[0].pod: length runs past",
            ),
            (
                &[0x12, 0x02, 0x08, 0x01],
                "nodeMap entry 0: unexpected wire type for the field (byte 2)",
            ),
            (&[0x00], "field key: field number 0 (byte 0)"),
            (
                &[0x1b, 0x24],
                "unknown field 3: end of group does not match its start",
            ),
        ];
        for (bytes, wanted) in cases {
            let err = RequestView::parse(Bytes::copy_from_slice(bytes)).unwrap_err();
            assert!(err.to_string().contains(wanted), "{bytes:?}: {err}");
            assert!(
                proto::BestOptionsRequest::decode(bytes).is_err(),
                "{bytes:?}"
            );
        }
        // A varint of eleven bytes, and groups nested past prost's limit.
        let long = [0xff; 11];
        assert!(RequestView::parse(Bytes::copy_from_slice(&long)).is_err());
        let mut deep = vec![0x1b; 101];
        deep.extend([0x1c; 101]);
        let err = RequestView::parse(Bytes::from(deep.clone())).unwrap_err();
        assert_eq!(err.problem, "nested too deeply");
        assert!(proto::BestOptionsRequest::decode(deep.as_slice()).is_err());
        let mut shallow = vec![0x1b; 99];
        shallow.extend([0x1c; 99]);
        assert!(RequestView::parse(Bytes::from(shallow.clone())).is_ok());
        assert!(proto::BestOptionsRequest::decode(shallow.as_slice()).is_ok());
    }

    #[test]
    fn an_option_repeating_the_previous_pods_shares_them() {
        let pods: Vec<Bytes> = (1..=3u8).map(|k| Bytes::from(vec![k; 5])).collect();
        let option = |id: &str, pod: Vec<Bytes>| proto::Option {
            node_group_id: id.to_owned(),
            node_count: 1,
            pod,
            ..proto::Option::default()
        };
        let request = proto::BestOptionsRequest {
            options: vec![
                option("a", pods.clone()),
                option("b", pods.clone()),
                // More pods than the option before: the run is shared, the
                // rest read one by one.
                option("c", [pods.clone(), vec![Bytes::from_static(b"x")]].concat()),
                option("d", pods[..2].to_vec()),
                option("e", Vec::new()),
                option("f", pods.clone()),
            ],
            node_map: Default::default(),
        };
        let view = RequestView::parse(request.encode_to_vec().into()).unwrap();
        let shared: Vec<usize> = view.options().iter().map(OptionView::shared_pods).collect();
        assert_eq!(shared, [0, 3, 3, 0, 0, 0]);
        assert_eq!(as_proto(&view), request);
    }

    #[test]
    fn empty_request_has_no_options() {
        let view = RequestView::parse(Bytes::new()).unwrap();
        assert!(view.options().is_empty());
        assert!(view.reply_all().is_empty());
    }
}
