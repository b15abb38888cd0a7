//! The structure of a DICOM file, checked before the parser sees it: every element header of the
//! meta group and the data set, into sequences, items and encapsulated pixel-data fragments, with
//! every length checked against the bytes that remain in its enclosing item, sequence or file.
//!
//! Why: the parser trusts lengths. An element that claims 4 GB makes it reserve 4 GB (or abort
//! the process when the allocation fails), a damaged length sends it through megabytes of
//! garbage, and on a 32-bit board `offset + length` can wrap around. After this walk every
//! length the parser will follow fits in the file, so what it allocates is bounded by the file
//! size (itself capped by `Limits::max_file_bytes`).
//!
//! Offsets are `usize` and every sum is `checked_add`, so nothing wraps on armv7. Nesting is
//! capped at [`MAX_DEPTH`]; each element consumes at least 8 bytes, so the walk is linear in
//! the file size. Deflated and big-endian data sets are refused rather than walked: a deflated
//! set is a decompression bomb unless inflation is capped, and big endian is retired (and no
//! reader this device meets writes it).

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

use crate::capture::DecodeError;

/// Sequences inside items inside sequences: deeper than this is no radiograph's header.
pub const MAX_DEPTH: usize = 32;

const UNDEFINED: u32 = 0xFFFF_FFFF;
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);
const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const ITEM_END: (u16, u16) = (0xFFFE, 0xE00D);
const SEQUENCE_END: (u16, u16) = (0xFFFE, 0xE0DD);

const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";
const BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";

/// Value representations with a 2-byte length in explicit VR (PS3.5 7.1.2). Every other VR has
/// a 4-byte length after two reserved bytes, an unknown one too: the parser reads a VR it does
/// not know as UN, whose length is 4 bytes, and the walk must read the same length it will.
const SHORT_VRS: [&[u8; 2]; 21] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN",
    b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
];

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Explicit,
    Implicit,
}

/// One element header.
struct Header {
    tag: (u16, u16),
    /// The VR in explicit encoding; `None` in implicit encoding and for item tags.
    vr: Option<[u8; 2]>,
    len: u32,
    /// Where the value starts.
    value_at: usize,
}

fn corrupt(detail: String) -> DecodeError {
    DecodeError::DicomCorrupt(detail)
}

/// Check the whole file (Part 10: 128-byte preamble, `DICM`, then the meta group).
pub fn check(bytes: &[u8]) -> Result<(), DecodeError> {
    let w = Walk { bytes };
    let (at, ts) = w.meta(132)?;
    let encoding = match ts.as_str() {
        IMPLICIT_LE => Encoding::Implicit,
        DEFLATED => {
            return Err(DecodeError::DicomUnsupported(
                "the data set is deflated (transfer syntax 1.2.840.10008.1.2.1.99), which is not accepted: export it uncompressed or with JPEG / JPEG 2000 compression".into(),
            ))
        }
        BIG_ENDIAN => {
            return Err(DecodeError::DicomUnsupported(
                "the data set is big endian (transfer syntax 1.2.840.10008.1.2.2, retired), which is not accepted: export it as explicit VR little endian".into(),
            ))
        }
        _ => Encoding::Explicit,
    };
    let end = w.data_set(at, bytes.len(), encoding, 0, false)?;
    debug_assert_eq!(end, bytes.len());
    Ok(())
}

struct Walk<'a> {
    bytes: &'a [u8],
}

impl Walk<'_> {
    fn u16_at(&self, at: usize) -> Option<u16> {
        let b = self.bytes.get(at..at.checked_add(2)?)?;
        Some(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        let b = self.bytes.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The element header at `at`, which must lie before `limit`.
    fn header(&self, at: usize, limit: usize, enc: Encoding) -> Result<Header, DecodeError> {
        let short = || {
            corrupt(format!(
                "the file ends inside an element header at byte {at}"
            ))
        };
        if at.checked_add(8).is_none_or(|e| e > limit) {
            return Err(short());
        }
        let group = self.u16_at(at).ok_or_else(short)?;
        let element = self.u16_at(at + 2).ok_or_else(short)?;
        let tag = (group, element);
        // Item and delimiter tags have no VR in any encoding.
        if group == 0xFFFE || enc == Encoding::Implicit {
            let len = self.u32_at(at + 4).ok_or_else(short)?;
            return Ok(Header {
                tag,
                vr: None,
                len,
                value_at: at + 8,
            });
        }
        let vr = [self.bytes[at + 4], self.bytes[at + 5]];
        if !vr.iter().all(u8::is_ascii_uppercase) {
            return Err(corrupt(format!(
                "element ({group:04X},{element:04X}) at byte {at} has no valid value representation"
            )));
        }
        if !SHORT_VRS.contains(&&vr) {
            if at.checked_add(12).is_none_or(|e| e > limit) {
                return Err(short());
            }
            let len = self.u32_at(at + 8).ok_or_else(short)?;
            Ok(Header {
                tag,
                vr: Some(vr),
                len,
                value_at: at + 12,
            })
        } else {
            let len = self.u16_at(at + 6).ok_or_else(short)? as u32;
            Ok(Header {
                tag,
                vr: Some(vr),
                len,
                value_at: at + 8,
            })
        }
    }

    /// Where a defined-length value ends, if it fits before `limit`.
    fn value_end(&self, h: &Header, limit: usize) -> Result<usize, DecodeError> {
        let (g, e) = h.tag;
        usize::try_from(h.len)
            .ok()
            .and_then(|len| h.value_at.checked_add(len))
            .filter(|&end| end <= limit)
            .ok_or_else(|| {
                corrupt(format!(
                    "element ({g:04X},{e:04X}) claims {} bytes but only {} remain",
                    h.len,
                    limit.saturating_sub(h.value_at)
                ))
            })
    }

    /// The meta group (always explicit VR little endian); where the data set starts, and the
    /// transfer syntax.
    ///
    /// The parser ends the meta group where its group length (0002,0000) says, not at the first
    /// element of another group; when the two disagree, it reads meta elements in the data set's
    /// encoding or data set elements as meta ones, with lengths this walk never checked. So
    /// they must agree.
    fn meta(&self, mut at: usize) -> Result<(usize, String), DecodeError> {
        let mut ts = String::new();
        let mut stated_end = None;
        while at < self.bytes.len() && self.u16_at(at) == Some(0x0002) {
            let h = self.header(at, self.bytes.len(), Encoding::Explicit)?;
            if h.len == UNDEFINED {
                let (g, e) = h.tag;
                return Err(corrupt(format!(
                    "meta element ({g:04X},{e:04X}) has an undefined length"
                )));
            }
            let end = self.value_end(&h, self.bytes.len())?;
            if h.tag == (0x0002, 0x0010) {
                ts = String::from_utf8_lossy(&self.bytes[h.value_at..end])
                    .trim_end_matches(['\0', ' '])
                    .to_string();
            }
            if h.tag == (0x0002, 0x0000) && h.len == 4 {
                let stated = self.u32_at(h.value_at).unwrap_or(0);
                stated_end = Some(
                    usize::try_from(stated)
                        .ok()
                        .and_then(|n| end.checked_add(n)),
                );
            }
            at = end;
        }
        match stated_end {
            Some(stated) if stated != Some(at) => Err(corrupt(format!(
                "the meta group length says the group ends at byte {}, but its elements end at byte {at}",
                stated.map_or("(beyond any file)".to_string(), |e| e.to_string())
            ))),
            _ => Ok((at, ts)),
        }
    }

    /// Elements from `at` up to `limit`, or, with `until_item_end`, up to an item delimiter
    /// (the value of an undefined-length item). Returns where the walk stopped.
    fn data_set(
        &self,
        mut at: usize,
        limit: usize,
        enc: Encoding,
        depth: usize,
        until_item_end: bool,
    ) -> Result<usize, DecodeError> {
        loop {
            if at == limit {
                if until_item_end {
                    return Err(corrupt(format!(
                        "an item without an end at byte {at} (no item delimiter)"
                    )));
                }
                return Ok(at);
            }
            let h = self.header(at, limit, enc)?;
            let (g, e) = h.tag;
            if g == 0xFFFE {
                if h.tag == ITEM_END && until_item_end {
                    return Ok(h.value_at);
                }
                return Err(corrupt(format!(
                    "an item tag ({g:04X},{e:04X}) at byte {at} outside a sequence"
                )));
            }
            at = self.element(&h, limit, enc, depth)?;
        }
    }

    /// Past one element whose header is `h`: its value skipped, or walked when it holds items.
    fn element(
        &self,
        h: &Header,
        limit: usize,
        enc: Encoding,
        depth: usize,
    ) -> Result<usize, DecodeError> {
        let (g, e) = h.tag;
        let vr = h.vr.as_ref();
        if h.len == UNDEFINED {
            return match vr {
                // Encapsulated pixel data: fragments until the sequence delimiter.
                Some(b"OB" | b"OW") if h.tag == PIXEL_DATA => self.fragments(h.value_at, limit),
                Some(b"SQ") => self.sequence(h.value_at, limit, None, enc, depth + 1),
                // UN of undefined length holds an implicit-VR sequence (PS3.5 6.2.2).
                Some(b"UN") => self.sequence(h.value_at, limit, None, Encoding::Implicit, depth + 1),
                // Implicit VR: only a sequence may have an undefined length.
                None => self.sequence(h.value_at, limit, None, enc, depth + 1),
                Some(_) => Err(corrupt(format!(
                    "element ({g:04X},{e:04X}) has an undefined length, which its value representation does not allow"
                ))),
            };
        }
        let end = self.value_end(h, limit)?;
        // The parser reads len / size values and moves on by what it read, not by len: a value
        // of 2 bytes in an FD (8-byte) element leaves them to be read as the next header.
        let size = match vr {
            Some(vr) => value_size(vr),
            None => dictionary_value_size(h.tag),
        };
        if let Some(size) = size.filter(|s| !(h.len as usize).is_multiple_of(*s)) {
            return Err(corrupt(format!(
                "element ({g:04X},{e:04X}) has {} bytes, not a whole number of its {size}-byte values",
                h.len
            )));
        }
        let is_sequence = match vr {
            Some(vr) => vr == b"SQ",
            None => is_dictionary_sequence(h.tag),
        };
        if is_sequence {
            self.sequence(h.value_at, limit, Some(end), enc, depth + 1)?;
        }
        Ok(end)
    }

    /// Items of a sequence: up to `end` (defined length) or the sequence delimiter.
    fn sequence(
        &self,
        mut at: usize,
        limit: usize,
        end: Option<usize>,
        enc: Encoding,
        depth: usize,
    ) -> Result<usize, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(corrupt(format!(
                "sequences nested more than {MAX_DEPTH} deep at byte {at}"
            )));
        }
        let limit = end.unwrap_or(limit);
        loop {
            if end == Some(at) {
                return Ok(at);
            }
            // Item headers are the same in every encoding.
            let h = self.header(at, limit, Encoding::Implicit)?;
            match h.tag {
                SEQUENCE_END if end.is_none() => return Ok(h.value_at),
                ITEM if h.len == UNDEFINED => {
                    at = self.data_set(h.value_at, limit, enc, depth, true)?;
                }
                ITEM => {
                    let item_end = self.value_end(&h, limit)?;
                    self.data_set(h.value_at, item_end, enc, depth, false)?;
                    at = item_end;
                }
                (g, e) => {
                    return Err(corrupt(format!(
                        "({g:04X},{e:04X}) at byte {at} where a sequence item was expected"
                    )))
                }
            }
        }
    }

    /// Encapsulated pixel data: the offset table and the fragments, each a defined-length item,
    /// then the sequence delimiter.
    fn fragments(&self, mut at: usize, limit: usize) -> Result<usize, DecodeError> {
        loop {
            let h = self.header(at, limit, Encoding::Implicit)?;
            match h.tag {
                SEQUENCE_END => return Ok(h.value_at),
                ITEM if h.len != UNDEFINED => at = self.value_end(&h, limit)?,
                (g, e) => {
                    return Err(corrupt(format!(
                        "({g:04X},{e:04X}) at byte {at} where a pixel data fragment was expected"
                    )))
                }
            }
        }
    }
}

/// The size of one value of a binary VR; `None` for text, bytes and sequences.
fn value_size(vr: &[u8; 2]) -> Option<usize> {
    match vr {
        b"FD" | b"OD" | b"SV" | b"UV" | b"OV" => Some(8),
        b"FL" | b"OF" | b"SL" | b"UL" | b"OL" | b"AT" => Some(4),
        b"US" | b"SS" | b"OW" => Some(2),
        _ => None,
    }
}

/// In implicit VR the parser takes the VR from the dictionary (US or SS, OB or OW: 2 bytes).
fn dictionary_value_size((group, element): (u16, u16)) -> Option<usize> {
    match StandardDataDictionary.by_tag(Tag(group, element))?.vr() {
        VirtualVr::Exact(vr) => value_size(&vr.to_string().as_bytes().try_into().ok()?),
        VirtualVr::Xs | VirtualVr::Ox => Some(2),
        _ => None,
    }
}

/// In implicit VR only the dictionary says which elements are sequences.
fn is_dictionary_sequence((group, element): (u16, u16)) -> bool {
    StandardDataDictionary
        .by_tag(Tag(group, element))
        .is_some_and(|entry| entry.vr() == VirtualVr::Exact(VR::SQ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Part 10 file: preamble, `DICM`, a meta group with `ts`, then `body`.
    fn part10(ts: &str, body: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 128];
        b.extend_from_slice(b"DICM");
        let mut ts = ts.as_bytes().to_vec();
        if ts.len() % 2 == 1 {
            ts.push(0);
        }
        b.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I']);
        b.extend_from_slice(&(ts.len() as u16).to_le_bytes());
        b.extend_from_slice(&ts);
        b.extend_from_slice(body);
        b
    }

    fn explicit(group: u16, element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&group.to_le_bytes());
        b.extend_from_slice(&element.to_le_bytes());
        b.extend_from_slice(vr);
        if !SHORT_VRS.contains(&vr) {
            b.extend_from_slice(&[0, 0]);
            b.extend_from_slice(&(value.len() as u32).to_le_bytes());
        } else {
            b.extend_from_slice(&(value.len() as u16).to_le_bytes());
        }
        b.extend_from_slice(value);
        b
    }

    /// An element written with a 2-byte length whatever its VR, as a damaged file has it.
    fn short_form(group: u16, element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&group.to_le_bytes());
        b.extend_from_slice(&element.to_le_bytes());
        b.extend_from_slice(vr);
        b.extend_from_slice(&(value.len() as u16).to_le_bytes());
        b.extend_from_slice(value);
        b
    }

    /// A header with a raw 32-bit length (undefined, or a lie).
    fn long_header(group: u16, element: u16, vr: &[u8; 2], len: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&group.to_le_bytes());
        b.extend_from_slice(&element.to_le_bytes());
        b.extend_from_slice(vr);
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&len.to_le_bytes());
        b
    }

    fn tag_len(group: u16, element: u16, len: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&group.to_le_bytes());
        b.extend_from_slice(&element.to_le_bytes());
        b.extend_from_slice(&len.to_le_bytes());
        b
    }

    const EXPLICIT: &str = "1.2.840.10008.1.2.1";

    fn message(r: Result<(), DecodeError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn a_well_formed_file_with_nested_sequences_and_fragments_passes() {
        let mut body = explicit(0x0008, 0x0060, b"CS", b"DX");
        // An undefined-length sequence with one undefined-length item holding a defined one.
        body.extend(long_header(0x0008, 0x1140, b"SQ", UNDEFINED));
        body.extend(tag_len(0xFFFE, 0xE000, UNDEFINED));
        let inner_item = explicit(0x0008, 0x1150, b"UI", b"1.2.3\0");
        let mut inner_seq = tag_len(0xFFFE, 0xE000, inner_item.len() as u32);
        inner_seq.extend(&inner_item);
        body.extend(long_header(0x0040, 0xA730, b"SQ", inner_seq.len() as u32));
        body.extend(&inner_seq);
        body.extend(tag_len(0xFFFE, 0xE00D, 0));
        body.extend(tag_len(0xFFFE, 0xE0DD, 0));
        // Encapsulated pixel data: empty offset table, one fragment.
        body.extend(long_header(0x7FE0, 0x0010, b"OB", UNDEFINED));
        body.extend(tag_len(0xFFFE, 0xE000, 0));
        body.extend(tag_len(0xFFFE, 0xE000, 4));
        body.extend([1, 2, 3, 4]);
        body.extend(tag_len(0xFFFE, 0xE0DD, 0));
        check(&part10("1.2.840.10008.1.2.4.50", &body)).unwrap();
    }

    /// The reviewer's file: an empty undefined-length sequence, then an element that claims
    /// about 4 GB. The old pre-scan stopped at the sequence and the parser reserved 3.75 GiB.
    #[test]
    fn a_huge_length_after_an_undefined_length_sequence_is_refused() {
        for vr in [b"OB", b"UN", b"UT"] {
            let mut body = long_header(0x0008, 0x1140, b"SQ", UNDEFINED);
            body.extend(tag_len(0xFFFE, 0xE0DD, 0));
            body.extend(long_header(0x0009, 0x1010, vr, 0xF000_0000));
            body.extend([0u8; 16]);
            let m = message(check(&part10(EXPLICIT, &body)));
            assert!(
                m.contains("claims 4026531840 bytes but only 16 remain"),
                "{m}"
            );
        }
    }

    /// On 32 bits, 0xFFFFFFF4 added to an offset wraps to just before it; checked sums refuse.
    #[test]
    fn lengths_that_would_wrap_an_offset_are_refused() {
        let mut b = vec![0u8; 128];
        b.extend_from_slice(b"DICM");
        b.extend(long_header(0x0002, 0x0001, b"OB", 0xFFFF_FFF4));
        b.extend([0u8; 20]);
        let m = message(check(&b));
        assert!(m.contains("claims 4294967284 bytes"), "{m}");
        let mut body = explicit(0x0008, 0x0060, b"CS", b"DX");
        body.extend(long_header(0x0009, 0x0010, b"UT", 0xFFFF_FFF8));
        assert!(message(check(&part10(EXPLICIT, &body))).contains("claims 4294967288 bytes"));
    }

    #[test]
    fn lengths_inside_items_and_fragments_are_checked_against_their_item() {
        // An item's element claims more than the item holds (but less than the file).
        let inner = long_header(0x0009, 0x1010, b"OB", 64);
        let mut item = tag_len(0xFFFE, 0xE000, inner.len() as u32);
        item.extend(&inner);
        let mut body = long_header(0x0008, 0x1140, b"SQ", item.len() as u32);
        body.extend(&item);
        body.extend([0u8; 128]);
        let m = message(check(&part10(EXPLICIT, &body)));
        assert!(m.contains("claims 64 bytes but only 0 remain"), "{m}");
        // A fragment longer than the file.
        let mut body = long_header(0x7FE0, 0x0010, b"OB", UNDEFINED);
        body.extend(tag_len(0xFFFE, 0xE000, 0));
        body.extend(tag_len(0xFFFE, 0xE000, 1 << 30));
        let m = message(check(&part10(EXPLICIT, &body)));
        assert!(m.contains("claims 1073741824 bytes"), "{m}");
        // A sequence that never ends.
        let mut body = long_header(0x0008, 0x1140, b"SQ", UNDEFINED);
        body.extend(tag_len(0xFFFE, 0xE000, UNDEFINED));
        body.extend(explicit(0x0008, 0x0060, b"CS", b"DX"));
        let m = message(check(&part10(EXPLICIT, &body)));
        assert!(
            m.contains("ends inside an element header") || m.contains("no item delimiter"),
            "{m}"
        );
    }

    /// Found by fuzzing (decode_image, decode_dicom): a VR the parser does not know (`CS`
    /// damaged to `CP`, `UI` to `TI`) has a 4-byte length for the parser (it reads it as UN).
    /// The walk read the 2-byte one, found it fitting, and the parser then reserved 1.3 GB.
    #[test]
    fn an_unknown_value_representation_is_walked_with_the_parsers_32_bit_length() {
        // As the parser reads it: reserved 0x0006, then a length of "CHES" (0x53454843).
        let mut body = short_form(0x0018, 0x0015, b"CP", b"CHEST ");
        body.extend(explicit(0x0008, 0x0060, b"CS", b"DX"));
        let m = message(check(&part10(EXPLICIT, &body)));
        assert!(m.contains("claims 1397049411 bytes"), "{m}");
        // The same in the meta group, where the parser reads UIDs into memory.
        let mut b = vec![0u8; 128];
        b.extend_from_slice(b"DICM");
        b.extend(short_form(0x0002, 0x0012, b"TI", b"2.25.2680510445993113"));
        b.extend([0u8; 64]);
        let m = message(check(&b));
        assert!(m.contains("(0002,0012) claims 892481074 bytes"), "{m}");
        // A VR it knows keeps its 2-byte length.
        check(&part10(
            EXPLICIT,
            &explicit(0x0018, 0x0015, b"CS", b"CHEST "),
        ))
        .unwrap();
    }

    /// Found by fuzzing (decode_dicom): (0028,0002) written as FD with 2 bytes. The parser read
    /// no 8-byte value, moved on by 0 bytes and took the 2 bytes and the next header for an
    /// element claiming 1.3 GB.
    #[test]
    fn a_binary_value_that_is_not_whole_values_is_refused() {
        let mut body = explicit(0x0028, 0x0002, b"FD", &[1, 0]);
        body.extend(explicit(0x0028, 0x0004, b"CS", b"MONOCHROME2 "));
        let m = message(check(&part10(EXPLICIT, &body)));
        assert!(m.contains("not a whole number of its 8-byte values"), "{m}");
        // Implicit VR: Rows is US in the dictionary.
        let mut body = tag_len(0x0028, 0x0010, 3);
        body.extend([1, 0, 0]);
        let m = message(check(&part10(IMPLICIT_LE, &body)));
        assert!(m.contains("2-byte values"), "{m}");
        check(&part10(
            EXPLICIT,
            &explicit(0x0028, 0x0010, b"US", &[64, 0]),
        ))
        .unwrap();
    }

    /// The parser ends the meta group by its group length: a length that does not match the
    /// elements would have it read one group in the other's encoding, unchecked.
    #[test]
    fn a_meta_group_length_that_disagrees_with_its_elements_is_refused() {
        let ts = explicit(0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2\0");
        for (stated, ok) in [
            (ts.len() as u32, true),
            (ts.len() as u32 + 8, false),
            (2, false),
        ] {
            let mut b = vec![0u8; 128];
            b.extend_from_slice(b"DICM");
            b.extend(explicit(0x0002, 0x0000, b"UL", &stated.to_le_bytes()));
            b.extend(&ts);
            b.extend(tag_len(0x0008, 0x0060, 2));
            b.extend(b"DX");
            match check(&b) {
                Ok(()) => assert!(ok, "group length {stated} accepted"),
                Err(e) => {
                    assert!(!ok, "group length {stated}: {e}");
                    assert!(e.to_string().contains("meta group length"), "{e}");
                }
            }
        }
    }

    #[test]
    fn implicit_vr_sequences_are_found_by_the_dictionary() {
        // (0008,1140) Referenced Image Sequence, implicit VR, defined length, with an element
        // inside that claims more than its item.
        let inner = tag_len(0x0008, 0x1150, 1000);
        let mut item = tag_len(0xFFFE, 0xE000, inner.len() as u32);
        item.extend(&inner);
        let mut body = tag_len(0x0008, 0x1140, item.len() as u32);
        body.extend(&item);
        body.extend([0u8; 2000]);
        let m = message(check(&part10(IMPLICIT_LE, &body)));
        assert!(m.contains("claims 1000 bytes but only 0 remain"), "{m}");
    }

    #[test]
    fn deep_nesting_deflate_and_big_endian_are_refused() {
        let mut body = Vec::new();
        for _ in 0..=MAX_DEPTH + 1 {
            body.extend(long_header(0x0008, 0x1140, b"SQ", UNDEFINED));
            body.extend(tag_len(0xFFFE, 0xE000, UNDEFINED));
        }
        let m = message(check(&part10(EXPLICIT, &body)));
        assert!(m.contains("nested more than 32 deep"), "{m}");
        for (ts, word) in [(DEFLATED, "deflated"), (BIG_ENDIAN, "big endian")] {
            let e = check(&part10(ts, &explicit(0x0008, 0x0060, b"CS", b"DX"))).unwrap_err();
            assert!(matches!(e, DecodeError::DicomUnsupported(_)), "{e}");
            assert!(e.to_string().contains(word), "{e}");
        }
    }
}
