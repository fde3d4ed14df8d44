use proptest::prelude::*;

use super::*;

fn deliver(
    reassembler: &mut Reassembler,
    frames: &[Vec<u8>],
) -> Vec<Result<Option<Vec<u8>>, FrameError>> {
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| reassembler.push(f, i as u64))
        .collect()
}

#[test]
fn frame_sizes_follow_the_mtu() {
    assert_eq!(max_frame_len(23), 20);
    assert_eq!(max_frame_len(10), 20);
    assert_eq!(max_frame_len(247), 244);
    assert_eq!(max_frame_len(517), 512);
    assert_eq!(max_frame_len(u16::MAX), 512);
    assert_eq!(frame_count(23, 16), 1);
    assert_eq!(frame_count(23, 17), 2);
    assert_eq!(frame_count(23, 34), 2);
    assert_eq!(frame_count(23, 35), 3);
}

#[test]
fn one_frame_message_layout() {
    let frames = Segmenter::new(23).segment(b"hi").expect("segment");
    assert_eq!(
        frames,
        vec![vec![FLAG_BEGIN | FLAG_END, 0, 0, 2, b'h', b'i']]
    );
    let empty = Segmenter::new(23).segment(b"").expect("segment");
    assert_eq!(empty, vec![vec![FLAG_BEGIN | FLAG_END, 0, 0, 0]]);
    let mut r = Reassembler::new(MAX_MESSAGE_LEN, 1000);
    assert_eq!(r.push(&empty[0], 0), Ok(Some(Vec::new())));
}

#[test]
fn multi_frame_layout_at_mtu_23() {
    let msg: Vec<u8> = (0..40).collect();
    let mut segmenter = Segmenter::new(23);
    let frames = segmenter.segment(&msg).expect("segment");
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[0][..4], [FLAG_BEGIN, 0, 0, 40]);
    assert_eq!(frames[0].len(), 20);
    assert_eq!(frames[1][..2], [0, 1]);
    assert_eq!(frames[2][..2], [FLAG_END, 2]);
    assert_eq!(segmenter.next_seq(), 3);
}

#[test]
fn too_large_is_refused_on_both_sides() {
    let mut segmenter = Segmenter::new(247);
    assert_eq!(
        segmenter.segment(&vec![0; MAX_MESSAGE_LEN + 1]),
        Err(FrameError::TooLarge {
            len: MAX_MESSAGE_LEN + 1,
            max: MAX_MESSAGE_LEN
        })
    );
    let frames = segmenter.segment(&[7; 300]).expect("segment");
    let mut r = Reassembler::new(200, 1000);
    assert_eq!(
        r.push(&frames[0], 0),
        Err(FrameError::TooLarge { len: 300, max: 200 })
    );
}

#[test]
fn malformed_frames_are_rejected() {
    let mut r = Reassembler::new(MAX_MESSAGE_LEN, 1000);
    assert!(matches!(r.push(&[], 0), Err(FrameError::Malformed { .. })));
    assert!(matches!(r.push(&[1], 0), Err(FrameError::Malformed { .. })));
    assert!(matches!(
        r.push(&[0x81, 0, 0, 0], 0),
        Err(FrameError::Malformed { .. })
    ));
    assert!(matches!(
        r.push(&[FLAG_BEGIN, 0, 1], 0),
        Err(FrameError::Malformed { .. })
    ));
    assert_eq!(
        r.push(&[0, 5, 1, 2], 0),
        Err(FrameError::MissingBegin { seq: 5 })
    );
    // Length lies.
    assert_eq!(
        r.push(&[FLAG_BEGIN | FLAG_END, 0, 0, 3, 1], 0),
        Err(FrameError::LengthMismatch {
            declared: 3,
            received: 1
        })
    );
    assert_eq!(
        r.push(&[FLAG_BEGIN, 0, 0, 1, 1, 2], 0),
        Err(FrameError::LengthMismatch {
            declared: 1,
            received: 2
        })
    );
}

#[test]
fn new_begin_before_end_is_truncation() {
    let mut segmenter = Segmenter::new(23);
    let first = segmenter.segment(&[1; 50]).expect("segment");
    let second = segmenter.segment(&[2; 5]).expect("segment");
    let mut r = Reassembler::new(MAX_MESSAGE_LEN, 1000);
    assert_eq!(r.push(&first[0], 0), Ok(None));
    // Renumber the second message's BEGIN so it follows in sequence.
    let mut begin = second[0].clone();
    begin[1] = first[1][1];
    assert_eq!(
        r.push(&begin, 1),
        Err(FrameError::Truncated {
            declared: 50,
            received: 16
        })
    );
    assert!(r.is_idle());
}

#[test]
fn reassembly_deadline_uses_the_time_passed_in() {
    let mut segmenter = Segmenter::new(23);
    let frames = segmenter.segment(&[9; 60]).expect("segment");
    let mut r = Reassembler::new(MAX_MESSAGE_LEN, 500);
    assert_eq!(r.push(&frames[0], 1000), Ok(None));
    assert_eq!(r.deadline(), Some(1500));
    assert_eq!(r.check_deadline(1499), Ok(()));
    assert_eq!(r.push(&frames[1], 1499), Ok(None));
    assert_eq!(r.push(&frames[2], 1500), Err(FrameError::Timeout));
    assert!(r.is_idle());
    assert_eq!(r.deadline(), None);
    // The sender's next message goes through.
    let next = segmenter.segment(b"again").expect("segment");
    assert_eq!(r.push(&next[0], 1600), Ok(Some(b"again".to_vec())));

    let frames = segmenter.segment(&[9; 60]).expect("segment");
    assert_eq!(r.push(&frames[0], 2000), Ok(None));
    assert_eq!(r.check_deadline(2500), Err(FrameError::Timeout));
}

#[test]
fn sequence_numbers_wrap() {
    let mut segmenter = Segmenter::new(23);
    let mut r = Reassembler::new(MAX_MESSAGE_LEN, 1000);
    for round in 0..100u32 {
        let msg = round.to_be_bytes().repeat(10);
        let frames = segmenter.segment(&msg).expect("segment");
        let results = deliver(&mut r, &frames);
        assert_eq!(results.last(), Some(&Ok(Some(msg))));
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Duplicate { index: usize, later: usize },
    Drop { index: usize },
    Swap { index: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0usize..4).prop_map(|(index, later)| Mutation::Duplicate { index, later }),
        any::<usize>().prop_map(|index| Mutation::Drop { index }),
        any::<usize>().prop_map(|index| Mutation::Swap { index }),
    ]
}

fn message() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..600),
        1 => prop::collection::vec(any::<u8>(), 0..=MAX_MESSAGE_LEN),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn round_trips_at_every_mtu(mtu in MIN_ATT_MTU..=MAX_ATT_MTU,
                                messages in prop::collection::vec(message(), 1..4),
                                start_seq in any::<u8>()) {
        let mut segmenter = Segmenter::new(mtu);
        segmenter.next_seq = start_seq;
        let mut r = Reassembler::new(MAX_MESSAGE_LEN, 60_000);
        for msg in &messages {
            let frames = segmenter.segment(msg).expect("segment");
            prop_assert_eq!(frames.len(), frame_count(mtu, msg.len()));
            prop_assert!(frames.iter().all(|f| f.len() <= usize::from(mtu) - 3 && f.len() <= 512));
            let results = deliver(&mut r, &frames);
            let (last, rest) = results.split_last().expect("at least one frame");
            prop_assert!(rest.iter().all(|res| res == &Ok(None)));
            prop_assert_eq!(last, &Ok(Some(msg.clone())));
        }
    }

    #[test]
    fn duplicates_and_gaps_are_detected(mtu in MIN_ATT_MTU..=300u16,
                                        len in 0usize..2000,
                                        mutation in mutation()) {
        let mut segmenter = Segmenter::new(mtu);
        let warm_up = segmenter.segment(b"warm-up").expect("segment");
        let target: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let frames = segmenter.segment(&target).expect("segment");
        let after = segmenter.segment(b"after").expect("segment");
        let last = segmenter.segment(b"last").expect("segment");
        let seq = |i: usize| frames[i][1];

        let mut stream = frames.clone();
        let expected_error = match mutation {
            Mutation::Duplicate { index, later } => {
                let index = index % frames.len();
                let at = (index + 1 + later).min(stream.len());
                stream.insert(at, frames[index].clone());
                FrameError::Duplicate { seq: seq(index) }
            }
            Mutation::Drop { index } => {
                let index = index % frames.len();
                stream.remove(index);
                let got = if index + 1 < frames.len() { seq(index + 1) } else { after[0][1] };
                FrameError::Gap { expected: seq(index), got }
            }
            Mutation::Swap { index } => {
                prop_assume!(frames.len() >= 2);
                let index = index % (frames.len() - 1);
                stream.swap(index, index + 1);
                FrameError::Gap { expected: seq(index), got: seq(index + 1) }
            }
        };

        let mut r = Reassembler::new(MAX_MESSAGE_LEN, 60_000);
        let all: Vec<Vec<u8>> = warm_up.iter().chain(&stream).chain(&after).chain(&last).cloned().collect();
        let results = deliver(&mut r, &all);
        let delivered: Vec<Vec<u8>> = results.iter().filter_map(|r| r.clone().ok().flatten()).collect();
        let first_error = results.iter().find_map(|r| r.clone().err());
        prop_assert_eq!(first_error, Some(expected_error.clone()));
        prop_assert_eq!(&delivered[0], &b"warm-up".to_vec());
        prop_assert_eq!(delivered.last(), Some(&b"last".to_vec()));
        let target_delivered = delivered.contains(&target);
        if matches!(expected_error, FrameError::Duplicate { .. }) {
            // A duplicate is ignored: nothing is lost.
            prop_assert!(target_delivered);
            prop_assert!(delivered.contains(&b"after".to_vec()));
            prop_assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
        } else {
            prop_assert!(!target_delivered, "a message with a gap must never be delivered");
        }
    }
}
