//! `docs/LAYOUT.md` and `src/layout.rs` agree: every offset, size and constant the document
//! lists equals the Rust constant, every offset constant of `layout.rs` is documented, and the
//! header, slot and record tables cover their regions byte for byte.
#![cfg(not(loom))] // real shared memory; the loom models are in tests/loom.rs

use std::collections::{BTreeMap, BTreeSet};

use shmring::layout::{self, record, slot};
use shmring::{Delivery, Kind, Policy, SyncMode};

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/LAYOUT.md");
const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/layout.rs");

/// Every offset constant: (name as written in the document, offset, size in bytes, type).
const OFFSETS: &[(&str, usize, usize, &str)] = &[
    ("MAGIC_OFFSET", layout::MAGIC_OFFSET, 8, "u64"),
    (
        "LAYOUT_VERSION_OFFSET",
        layout::LAYOUT_VERSION_OFFSET,
        4,
        "u32",
    ),
    ("HEADER_LEN_OFFSET", layout::HEADER_LEN_OFFSET, 4, "u32"),
    ("FLAGS_OFFSET", layout::FLAGS_OFFSET, 4, "u32"),
    ("KIND_OFFSET", layout::KIND_OFFSET, 1, "u8"),
    ("SYNC_OFFSET", layout::SYNC_OFFSET, 1, "u8"),
    ("POLICY_OFFSET", layout::POLICY_OFFSET, 1, "u8"),
    ("DELIVERY_OFFSET", layout::DELIVERY_OFFSET, 1, "u8"),
    ("ACK_TIMEOUT_OFFSET", layout::ACK_TIMEOUT_OFFSET, 4, "u32"),
    ("CAPACITY_OFFSET", layout::CAPACITY_OFFSET, 8, "u64"),
    (
        "MAX_MESSAGE_SIZE_OFFSET",
        layout::MAX_MESSAGE_SIZE_OFFSET,
        4,
        "u32",
    ),
    (
        "MAX_PARTICIPANTS_OFFSET",
        layout::MAX_PARTICIPANTS_OFFSET,
        4,
        "u32",
    ),
    (
        "PARTICIPANTS_OFFSET_OFFSET",
        layout::PARTICIPANTS_OFFSET_OFFSET,
        8,
        "u64",
    ),
    ("DATA_OFFSET_OFFSET", layout::DATA_OFFSET_OFFSET, 8, "u64"),
    ("SEGMENT_LEN_OFFSET", layout::SEGMENT_LEN_OFFSET, 8, "u64"),
    ("CREATOR_PID_OFFSET", layout::CREATOR_PID_OFFSET, 4, "u32"),
    ("MODE_OFFSET", layout::MODE_OFFSET, 4, "u32"),
    (
        "CREATOR_START_TIME_OFFSET",
        layout::CREATOR_START_TIME_OFFSET,
        8,
        "u64",
    ),
    ("CREATED_AT_OFFSET", layout::CREATED_AT_OFFSET, 8, "u64"),
    ("READY_OFFSET", layout::READY_OFFSET, 4, "u32"),
    ("SEQ_KEY_OFFSET", layout::SEQ_KEY_OFFSET, 8, "u64"),
    ("TAIL_OFFSET", layout::TAIL_OFFSET, 8, "u64"),
    ("HEAD_CACHE_OFFSET", layout::HEAD_CACHE_OFFSET, 8, "u64"),
    ("DATA_SEQ_OFFSET", layout::DATA_SEQ_OFFSET, 4, "u32"),
    ("DATA_WAITERS_OFFSET", layout::DATA_WAITERS_OFFSET, 4, "u32"),
    ("SPACE_SEQ_OFFSET", layout::SPACE_SEQ_OFFSET, 4, "u32"),
    (
        "SPACE_WAITERS_OFFSET",
        layout::SPACE_WAITERS_OFFSET,
        4,
        "u32",
    ),
    ("QUEUE_HEAD_OFFSET", layout::QUEUE_HEAD_OFFSET, 8, "u64"),
    ("TAKER_OFFSET", layout::TAKER_OFFSET, 8, "u64"),
    ("OFFERS_OFFSET", layout::OFFERS_OFFSET, 4, "u32"),
    (
        "MUTEX_OFFSET",
        layout::MUTEX_OFFSET,
        layout::MUTEX_LEN,
        "pthread_mutex_t",
    ),
    ("PENDING_POS_OFFSET", layout::PENDING_POS_OFFSET, 8, "u64"),
    ("PENDING_LEN_OFFSET", layout::PENDING_LEN_OFFSET, 8, "u64"),
    (
        "PENDING_START_OFFSET",
        layout::PENDING_START_OFFSET,
        8,
        "u64",
    ),
    ("LATEST_OFFSET", layout::LATEST_OFFSET, 8, "u64"),
    ("slot::STATE", slot::STATE, 4, "u32"),
    ("slot::ROLE", slot::ROLE, 4, "u32"),
    ("slot::PID", slot::PID, 4, "u32"),
    ("slot::FLAGS", slot::FLAGS, 4, "u32"),
    ("slot::START_TIME", slot::START_TIME, 8, "u64"),
    ("slot::JOINED_AT", slot::JOINED_AT, 8, "u64"),
    ("slot::HEARTBEAT", slot::HEARTBEAT, 8, "u64"),
    ("slot::CLAIM", slot::CLAIM, 8, "u64"),
    ("slot::CURSOR", slot::CURSOR, 8, "u64"),
    ("slot::MESSAGES", slot::MESSAGES, 8, "u64"),
    ("slot::LOST", slot::LOST, 8, "u64"),
    ("slot::READ", slot::READ, 8, "u64"),
    ("slot::NAME", slot::NAME, slot::NAME_LEN, "[u8; 32]"),
    ("slot::HELD_END", slot::HELD_END, 8, "u64"),
    ("slot::TAKE_OP", slot::TAKE_OP, 8, "u64"),
    ("slot::HELD", slot::HELD, 8, "u64"),
    ("slot::OWNER", slot::OWNER, 8, "u64"),
    ("slot::IN_FLIGHT", slot::IN_FLIGHT, 8, "u64"),
    ("slot::TAKEN_AT", slot::TAKEN_AT, 8, "u64"),
    ("slot::REDELIVERED", slot::REDELIVERED, 8, "u64"),
    ("slot::DELIVERIES", slot::DELIVERIES, 8, "u64"),
    ("record::SEQ", record::SEQ, 8, "u64"),
    ("record::LEN", record::LEN, 4, "u32"),
    ("record::PRODUCER", record::PRODUCER, 2, "u16"),
    ("record::FLAGS", record::FLAGS, 2, "u16"),
    ("record::PSEQ", record::PSEQ, 8, "u64"),
];

/// Every other constant of the wire format: (name as written in the document, value).
const CONSTANTS: &[(&str, u64)] = &[
    ("MAGIC", layout::MAGIC),
    ("LAYOUT_VERSION", layout::LAYOUT_VERSION as u64),
    ("HEADER_LEN", layout::HEADER_LEN as u64),
    ("CACHE_LINE", layout::CACHE_LINE as u64),
    ("MUTEX_LEN", layout::MUTEX_LEN as u64),
    ("READY", layout::READY as u64),
    ("FLAG_UNLINKED", layout::FLAG_UNLINKED as u64),
    ("WAITERS_FENCED", layout::WAITERS_FENCED as u64),
    ("MAX_POSITION", layout::MAX_POSITION),
    ("PAGE", layout::PAGE as u64),
    ("MIN_CAPACITY", layout::MIN_CAPACITY),
    ("MAX_CAPACITY", layout::MAX_CAPACITY),
    ("MAX_PARTICIPANTS", layout::MAX_PARTICIPANTS as u64),
    ("slot::SLOT_LEN", slot::SLOT_LEN as u64),
    ("slot::NO_CLAIM", slot::NO_CLAIM),
    ("slot::FREE", slot::FREE as u64),
    ("slot::JOINING", slot::JOINING as u64),
    ("slot::JOINED", slot::JOINED as u64),
    ("slot::ACTIVE", slot::ACTIVE as u64),
    ("slot::AWAY", slot::AWAY as u64),
    ("slot::NAMED", slot::NAMED as u64),
    ("slot::NAME_LEN", slot::NAME_LEN as u64),
    ("NAMES_LOCK_OFFSET", layout::NAMES_LOCK_OFFSET as u64),
    ("PRODUCER_LOCK_OFFSET", layout::PRODUCER_LOCK_OFFSET as u64),
    ("slot::STATE_BITS", slot::STATE_BITS as u64),
    ("slot::ROLE_PRODUCER", slot::ROLE_PRODUCER as u64),
    ("slot::ROLE_SUBSCRIBER", slot::ROLE_SUBSCRIBER as u64),
    ("slot::ROLE_CONSUMER", slot::ROLE_CONSUMER as u64),
    ("record::HEADER_LEN", record::HEADER_LEN as u64),
    ("record::ALIGN", record::ALIGN as u64),
    ("record::CLAIMED", record::CLAIMED),
    ("record::MESSAGE", record::MESSAGE),
    ("record::PADDING", record::PADDING),
    ("record::ABANDONED", record::ABANDONED),
    ("record::STATE_MASK", record::STATE_MASK),
    ("Kind::Topic", Kind::Topic as u64),
    ("Kind::Queue", Kind::Queue as u64),
    ("SyncMode::LockFree", SyncMode::LockFree as u64),
    ("SyncMode::Semaphore", SyncMode::Semaphore as u64),
    ("Policy::Block", Policy::Block as u64),
    ("Policy::Fail", Policy::Fail as u64),
    ("Policy::Overwrite", Policy::Overwrite as u64),
    ("Delivery::AtMostOnce", Delivery::AtMostOnce as u64),
    ("Delivery::AtLeastOnce", Delivery::AtLeastOnce as u64),
    ("slot::NO_HELD", slot::NO_HELD),
    ("slot::OP_PENDING", slot::OP_PENDING),
    ("slot::OP_DONE", slot::OP_DONE),
    ("slot::OP_FAILED", slot::OP_FAILED),
    ("slot::OWNER_OFFERED", slot::OWNER_OFFERED),
];

/// One row of an offset table.
#[derive(Debug)]
struct Field {
    line: usize,
    offset: usize,
    size: usize,
    ty: String,
    /// `None` for a `(reserved)` row.
    name: Option<String>,
}

/// Splits a markdown table row on the `|` that are not escaped as `\|`.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().unwrap().push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            _ => out.last_mut().unwrap().push(c),
        }
    }
    out.into_iter().map(|c| c.trim().to_owned()).collect()
}

fn number(s: &str, line: usize) -> u64 {
    let s = s.replace('_', "");
    let r = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.unwrap_or_else(|_| panic!("LAYOUT.md line {line}: {s:?} is not a number"))
}

/// One row of a constants table: (line, name, value).
type Constant = (usize, String, u64);

/// `` `NAME` `` → `NAME`; anything else → `None`.
fn code_name(cell: &str) -> Option<String> {
    let name = cell.strip_prefix('`')?.strip_suffix('`')?;
    (!name.is_empty() && !name.contains('`')).then(|| name.to_owned())
}

/// The offset tables (columns offset, size, type, name, meaning) and the constant tables
/// (columns name, value, meaning) of the document.
fn parse(doc: &str) -> (Vec<Vec<Field>>, Vec<Constant>) {
    enum Table {
        None,
        Offsets,
        Constants,
    }
    let mut state = Table::None;
    let mut tables: Vec<Vec<Field>> = Vec::new();
    let mut constants = Vec::new();
    let mut in_code = false;
    for (i, raw) in doc.lines().enumerate() {
        let line = i + 1;
        if raw.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        if in_code || !raw.trim_start().starts_with('|') {
            state = Table::None;
            continue;
        }
        let c = cells(raw);
        if c.iter()
            .all(|x| x.chars().all(|ch| matches!(ch, '-' | ':')))
        {
            continue; // the separator row
        }
        match state {
            Table::None => {
                let head: Vec<&str> = c.iter().map(String::as_str).collect();
                if head == ["offset", "size", "type", "name", "meaning"] {
                    state = Table::Offsets;
                    tables.push(Vec::new());
                } else if head == ["name", "value", "meaning"] {
                    state = Table::Constants;
                } else {
                    panic!("LAYOUT.md line {line}: a table with unknown columns {head:?}");
                }
            }
            Table::Offsets => {
                assert_eq!(c.len(), 5, "LAYOUT.md line {line}: {raw}");
                let name = code_name(&c[3]);
                if name.is_none() {
                    // `(as above)`: fields a variant of a table shares with the table before.
                    assert!(
                        c[3] == "(reserved)" || c[3] == "(as above)",
                        "LAYOUT.md line {line}: name cell"
                    );
                }
                tables.last_mut().unwrap().push(Field {
                    line,
                    offset: number(&c[0], line) as usize,
                    size: number(&c[1], line) as usize,
                    ty: c[2].clone(),
                    name,
                });
            }
            Table::Constants => {
                assert_eq!(c.len(), 3, "LAYOUT.md line {line}: {raw}");
                let name = code_name(&c[0])
                    .unwrap_or_else(|| panic!("LAYOUT.md line {line}: name not in backticks"));
                constants.push((line, name, number(&c[1], line)));
            }
        }
    }
    (tables, constants)
}

/// The `pub const NAME: usize|u64|u32` items of `layout.rs`, with `slot::`/`record::` for
/// those inside those modules.
fn source_constants(src: &str) -> BTreeSet<String> {
    let mut prefix = "";
    let mut out = BTreeSet::new();
    for line in src.lines() {
        if line.starts_with("pub mod slot") {
            prefix = "slot::";
        } else if line.starts_with("pub mod record") {
            prefix = "record::";
        } else if line.starts_with('}') {
            prefix = "";
        }
        let Some(rest) = line.trim_start().strip_prefix("pub const ") else {
            continue;
        };
        if rest.starts_with("fn ") {
            continue;
        }
        let (name, ty) = rest.split_once(':').expect("pub const NAME: TYPE");
        if ["usize", "u64", "u32"].contains(&ty.split('=').next().unwrap().trim()) {
            out.insert(format!("{prefix}{name}"));
        }
    }
    out
}

#[test]
fn layout_doc_matches_code() {
    let doc = std::fs::read_to_string(DOC).expect("read docs/LAYOUT.md");
    let (tables, constants) = parse(&doc);
    let offsets: BTreeMap<&str, (usize, usize, &str)> = OFFSETS
        .iter()
        .map(|(n, o, s, t)| (*n, (*o, *s, *t)))
        .collect();
    assert_eq!(offsets.len(), OFFSETS.len(), "duplicate names in OFFSETS");

    // Each documented offset and size equals the code's.
    let mut seen = BTreeSet::new();
    assert_eq!(
        tables.len(),
        4,
        "header, slot, at-least-once consumer slot and record tables"
    );
    for table in &tables {
        for f in table {
            let Some(name) = &f.name else { continue };
            let (offset, size, ty) = *offsets
                .get(name.as_str())
                .unwrap_or_else(|| panic!("LAYOUT.md line {}: unknown name {name}", f.line));
            assert_eq!(
                (f.offset, f.size),
                (offset, size),
                "LAYOUT.md line {}: {name} (offset, size)",
                f.line
            );
            assert!(
                f.ty == ty || f.ty == format!("{ty} atomic"),
                "LAYOUT.md line {}: type {:?} of {name} is not {ty}",
                f.line,
                f.ty
            );
            assert!(
                f.offset.is_multiple_of(f.size.min(8)),
                "{name} is not naturally aligned"
            );
            assert!(seen.insert(name.clone()), "{name} documented twice");
        }
    }
    // Each offset the code has is documented.
    for (name, _, _, _) in OFFSETS {
        assert!(
            seen.contains(*name),
            "docs/LAYOUT.md does not document {name}"
        );
    }

    // Each table covers its region, byte for byte, in order.
    for table in &tables {
        let first = table
            .iter()
            .find_map(|f| f.name.as_deref())
            .expect("a table with named rows");
        let (region, len) = match first.split_once("::") {
            None => ("header", layout::HEADER_LEN),
            Some(("slot", _)) => ("slot", slot::SLOT_LEN),
            Some(("record", _)) => ("record", record::HEADER_LEN),
            Some((other, _)) => panic!("unknown region {other}"),
        };
        let mut at = 0;
        for f in table {
            if let Some(name) = &f.name {
                let in_region = match region {
                    "header" => !name.contains("::"),
                    r => name.starts_with(&format!("{r}::")),
                };
                assert!(
                    in_region,
                    "LAYOUT.md line {}: {name} in the {region} table",
                    f.line
                );
            }
            assert_eq!(
                f.offset, at,
                "LAYOUT.md line {}: the {region} table has a gap or overlap",
                f.line
            );
            at += f.size;
        }
        assert_eq!(at, len, "the {region} table ends at {at}, not {len}");
    }

    // Constants: each documented value equals the code's, each one in the list is documented.
    let values: BTreeMap<&str, u64> = CONSTANTS.iter().copied().collect();
    let mut documented = BTreeSet::new();
    for (line, name, value) in &constants {
        let want = values
            .get(name.as_str())
            .unwrap_or_else(|| panic!("LAYOUT.md line {line}: unknown constant {name}"));
        assert_eq!(value, want, "LAYOUT.md line {line}: value of {name}");
        assert!(documented.insert(name.clone()), "{name} documented twice");
    }
    for (name, _) in CONSTANTS {
        assert!(
            documented.contains(*name),
            "docs/LAYOUT.md lacks constant {name}"
        );
    }
}

/// The lists above are complete: every integer constant of `layout.rs` is in one of them, so
/// a new offset cannot be added to the code without reaching the document.
#[test]
fn layout_doc_lists_every_layout_constant() {
    let src = std::fs::read_to_string(SRC).expect("read src/layout.rs");
    let listed: BTreeSet<String> = OFFSETS
        .iter()
        .map(|(n, _, _, _)| n.to_string())
        .chain(CONSTANTS.iter().map(|(n, _)| n.to_string()))
        .collect();
    let in_source = source_constants(&src);
    assert!(in_source.contains("TAIL_OFFSET") && in_source.contains("slot::CURSOR"));
    let missing: Vec<_> = in_source.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "constants of layout.rs missing from tests/layout_doc.rs and docs/LAYOUT.md: {missing:?}"
    );
}

#[test]
fn documented_example_geometry_holds() {
    let g = layout::Geometry {
        capacity: shmring::DEFAULT_CAPACITY,
        max_message_size: shmring::DEFAULT_MAX_MESSAGE_SIZE,
        max_participants: shmring::DEFAULT_MAX_PARTICIPANTS,
    };
    assert_eq!(g.data_offset(), 12288);
    assert_eq!(g.segment_len(), 1_060_864);
    assert_eq!(layout::MAGIC.to_le_bytes(), *b"SHMRING\0");
    assert_eq!(slot::next_generation(slot::ACTIVE | 4), 8);
    assert_eq!(record::encode_seq(64, record::MESSAGE, 0x100), 0x142);
    let doc = std::fs::read_to_string(DOC).unwrap();
    assert!(doc.contains("`data_offset = 12288`") && doc.contains("`segment_len = 1060864`"));
}
