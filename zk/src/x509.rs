//! The `x509` scheme's identities: a certificate subject (the DER `Name`) written as Java's
//! `X500Principal.getName()` writes it (RFC 2253, the string ZooKeeper's
//! `X509AuthenticationProvider` uses as the id), and the check of an ACL id that
//! `new X500Principal(id)` performs (`isValid`).
//!
//! Java's RFC 2253 form, reproduced here (OpenJDK's `X500Name.getRFC2253Name` and
//! `AVA.toRFC2253String`): the RDNs from last to first, joined by `,`; the values of one
//! multi-valued RDN joined by `+` in their encoded order; an attribute named by keyword only
//! for `CN C L ST O OU STREET DC UID`, every other by its dotted OID; a value by its OID, or
//! of a type that is not a string (PrintableString, T61String, IA5String, GeneralString,
//! BMPString, UTF8String), is `#` and the lowercase hex of its whole DER encoding; a string
//! value has `, = + < > # ; " \` escaped with a backslash, NUL written `\00`, leading and
//! trailing spaces (and CRs) escaped, and every other character as is. The string types are
//! decoded as JDK 21 does (BMPString as UTF-16, UTF8String as UTF-8, the others as
//! ISO-8859-1); JDK 17 decodes all of them as UTF-8, which differs only for BMPString and
//! non-ASCII T61String values.
//!
//! Everything here reads untrusted bytes: every length is checked against what is there and
//! nothing panics.

use std::fmt::Write as _;

/// Why a subject could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("certificate subject: {0}")]
pub struct DnError(&'static str);

/// The RFC 2253 keywords Java writes by name (`AVAKeyword`'s RFC 2253-compliant ones).
const KEYWORDS: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

/// Every keyword `X500Principal(String)` accepts (RFC 1779, RFC 2253 and Java's own), upper
/// case; an attribute type may also be a dotted OID, with or without an `OID.` prefix.
const PARSE_KEYWORDS: &[&str] = &[
    "CN",
    "C",
    "L",
    "S",
    "ST",
    "O",
    "OU",
    "T",
    "IP",
    "STREET",
    "DC",
    "DNQUALIFIER",
    "DNQ",
    "SURNAME",
    "GIVENNAME",
    "INITIALS",
    "GENERATION",
    "EMAIL",
    "EMAILADDRESS",
    "UID",
    "SERIALNUMBER",
];

/// One DER element: its tag byte, its content, and its whole encoding.
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    whole: &'a [u8],
}

/// Reads the DER element at the start of `input`; returns it and the rest.
fn tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), DnError> {
    let (&tag, rest) = input.split_first().ok_or(DnError("truncated"))?;
    if tag & 0x1f == 0x1f {
        return Err(DnError("high tag numbers are not used in names"));
    }
    let (&first, mut rest) = rest.split_first().ok_or(DnError("truncated length"))?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(DnError("bad length"));
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | usize::from(b);
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return Err(DnError("element longer than its container"));
    }
    let header = input.len() - rest.len();
    Ok((
        Tlv {
            tag,
            content: &rest[..len],
            whole: &input[..header + len],
        },
        &rest[len..],
    ))
}

/// The elements inside a constructed element's content.
fn children(mut content: &[u8]) -> Result<Vec<Tlv<'_>>, DnError> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let (t, rest) = tlv(content)?;
        out.push(t);
        content = rest;
    }
    Ok(out)
}

/// An OBJECT IDENTIFIER's content as dotted decimal.
fn oid_string(content: &[u8]) -> Result<String, DnError> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    let mut pending = false;
    for &b in content {
        if acc > (u64::MAX >> 7) {
            return Err(DnError("OID arc too large"));
        }
        acc = (acc << 7) | u64::from(b & 0x7f);
        pending = true;
        if b & 0x80 == 0 {
            arcs.push(acc);
            acc = 0;
            pending = false;
        }
    }
    if pending || arcs.is_empty() {
        return Err(DnError("truncated OID"));
    }
    let first = arcs[0];
    let (a, b) = match first {
        0..=39 => (0, first),
        40..=79 => (1, first - 40),
        _ => (2, first - 80),
    };
    let mut s = format!("{a}.{b}");
    for arc in &arcs[1..] {
        let _ = write!(s, ".{arc}");
    }
    Ok(s)
}

/// A string value decoded the way Java's `AVA` does, or `None` for a type it writes as hex.
fn string_value(tag: u8, content: &[u8]) -> Option<String> {
    match tag {
        0x0c => Some(String::from_utf8_lossy(content).into_owned()),
        0x13 | 0x14 | 0x16 | 0x1b => Some(content.iter().map(|&b| char::from(b)).collect()),
        0x1e => {
            let units: Vec<u16> = content
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]))
                .collect();
            Some(String::from_utf16_lossy(&units))
        }
        _ => None,
    }
}

/// `AVA.toRFC2253String`'s escaping of a string value.
fn escape_value(value: &str) -> String {
    const ESCAPEES: &str = ",=+<>#;\"\\";
    let mut chars: Vec<char> = Vec::with_capacity(value.len());
    for c in value.chars() {
        if ESCAPEES.contains(c) {
            chars.push('\\');
            chars.push(c);
        } else if c == '\0' {
            chars.extend(['\\', '0', '0']);
        } else {
            chars.push(c);
        }
    }
    let blank = |c: &char| *c == ' ' || *c == '\r';
    let lead = chars.iter().take_while(|c| blank(c)).count();
    let trail = chars.len() - chars.iter().rev().take_while(|c| blank(c)).count();
    let mut out = String::with_capacity(chars.len() + 4);
    for (i, c) in chars.into_iter().enumerate() {
        if i < lead || i >= trail {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A DER `Name` (the certificate's subject, tag and length included) as
/// `X500Principal.getName()` writes it.
pub fn rfc2253_from_der(name: &[u8]) -> Result<String, DnError> {
    let (seq, rest) = tlv(name)?;
    if seq.tag != 0x30 || !rest.is_empty() {
        return Err(DnError("not a SEQUENCE of RDNs"));
    }
    let mut rdns = Vec::new();
    for set in children(seq.content)? {
        if set.tag != 0x31 {
            return Err(DnError("an RDN that is not a SET"));
        }
        let mut avas = Vec::new();
        for ava in children(set.content)? {
            if ava.tag != 0x30 {
                return Err(DnError("an attribute that is not a SEQUENCE"));
            }
            let parts = children(ava.content)?;
            let [oid, value] = parts.as_slice() else {
                return Err(DnError("an attribute without exactly a type and a value"));
            };
            if oid.tag != 0x06 {
                return Err(DnError("an attribute type that is not an OID"));
            }
            let dotted = oid_string(oid.content)?;
            let keyword = KEYWORDS.iter().find(|(o, _)| *o == dotted).map(|(_, k)| *k);
            let text = match (keyword, string_value(value.tag, value.content)) {
                (Some(k), Some(s)) => format!("{k}={}", escape_value(&s)),
                (k, _) => {
                    let mut s = format!("{}=#", k.unwrap_or(&dotted));
                    for b in value.whole {
                        let _ = write!(s, "{b:02x}");
                    }
                    s
                }
            };
            avas.push(text);
        }
        if avas.is_empty() {
            return Err(DnError("an empty RDN"));
        }
        rdns.push(avas.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

/// Whether `new X500Principal(dn)` accepts `dn` (`X509AuthenticationProvider.isValid`): RDNs
/// separated by `,` or `;`, attribute-value pairs by `+`; each pair `type=value` with a known
/// keyword (any case) or a dotted OID as the type; a value quoted, `#` and an even number of
/// hex digits, or a string whose backslashes escape a special character or two hex digits.
/// The empty string is the empty name (valid).
#[must_use]
pub fn is_valid_dn(dn: &str) -> bool {
    let chars: Vec<char> = dn.chars().collect();
    if chars.iter().all(|c| c.is_whitespace()) {
        return true;
    }
    let mut i = 0;
    loop {
        // One attribute type and value.
        let Some(next) = parse_ava(&chars, i) else {
            return false;
        };
        i = next;
        match chars.get(i) {
            None => return true,
            Some(',' | ';' | '+') => i += 1,
            Some(_) => return false,
        }
    }
}

/// Parses `type=value` at `i` (surrounding blanks allowed); returns the index after it.
fn parse_ava(chars: &[char], mut i: usize) -> Option<usize> {
    let skip = |mut i: usize| {
        while chars.get(i).is_some_and(|c| *c == ' ') {
            i += 1;
        }
        i
    };
    i = skip(i);
    let start = i;
    while chars.get(i).is_some_and(|c| *c != '=') {
        i += 1;
    }
    chars.get(i)?;
    let keyword: String = chars[start..i].iter().collect();
    if !valid_type(keyword.trim()) {
        return None;
    }
    i = skip(i + 1);
    match chars.get(i) {
        Some('"') => {
            i += 1;
            loop {
                match chars.get(i)? {
                    '"' => break,
                    '\\' => i += 2,
                    _ => i += 1,
                }
            }
            i = skip(i + 1);
        }
        Some('#') => {
            i += 1;
            let hex_start = i;
            while chars.get(i).is_some_and(char::is_ascii_hexdigit) {
                i += 1;
            }
            let n = i - hex_start;
            if n == 0 || n % 2 != 0 {
                return None;
            }
            i = skip(i);
        }
        _ => loop {
            match chars.get(i) {
                None | Some(',' | ';' | '+') => break,
                Some('\\') => {
                    let next = *chars.get(i + 1)?;
                    if ",=+<>#;\"\\ ".contains(next) {
                        i += 2;
                    } else if next.is_ascii_hexdigit()
                        && chars.get(i + 2).is_some_and(char::is_ascii_hexdigit)
                    {
                        i += 3;
                    } else {
                        return None;
                    }
                }
                Some('"' | '<' | '>' | '=') => return None,
                Some(_) => i += 1,
            }
        },
    }
    Some(i)
}

fn valid_type(t: &str) -> bool {
    let upper = t.to_ascii_uppercase();
    if PARSE_KEYWORDS.contains(&upper.as_str()) {
        return true;
    }
    let oid = upper.strip_prefix("OID.").unwrap_or(&upper);
    let arcs: Vec<&str> = oid.split('.').collect();
    arcs.len() >= 2
        && arcs
            .iter()
            .all(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DER of one attribute `oid = value` (value given whole, tag included).
    fn ava(oid: &[u8], value: &[u8]) -> Vec<u8> {
        let mut inner = vec![0x06, oid.len() as u8];
        inner.extend_from_slice(oid);
        inner.extend_from_slice(value);
        let mut out = vec![0x30, inner.len() as u8];
        out.extend(inner);
        out
    }

    fn set(avas: &[Vec<u8>]) -> Vec<u8> {
        let inner: Vec<u8> = avas.concat();
        let mut out = vec![0x31, inner.len() as u8];
        out.extend(inner);
        out
    }

    fn name(rdns: &[Vec<u8>]) -> Vec<u8> {
        let inner: Vec<u8> = rdns.concat();
        let mut out = vec![0x30, inner.len() as u8];
        out.extend(inner);
        out
    }

    fn utf8(s: &str) -> Vec<u8> {
        let mut v = vec![0x0c, s.len() as u8];
        v.extend_from_slice(s.as_bytes());
        v
    }

    fn printable(s: &str) -> Vec<u8> {
        let mut v = vec![0x13, s.len() as u8];
        v.extend_from_slice(s.as_bytes());
        v
    }

    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const O: &[u8] = &[0x55, 0x04, 0x0a];
    const C: &[u8] = &[0x55, 0x04, 0x06];
    const OU: &[u8] = &[0x55, 0x04, 0x0b];
    const EMAIL: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01];

    #[test]
    fn rdns_are_written_last_first_with_keywords() {
        let der = name(&[
            set(&[ava(C, &printable("US"))]),
            set(&[ava(O, &utf8("Example Org"))]),
            set(&[ava(CN, &utf8("client one"))]),
        ]);
        assert_eq!(
            rfc2253_from_der(&der).unwrap(),
            "CN=client one,O=Example Org,C=US"
        );
    }

    #[test]
    fn specials_are_escaped_as_java_does() {
        let der = name(&[
            set(&[ava(O, &utf8("Sue, Grabbit and Runn"))]),
            set(&[ava(CN, &utf8(" a=b+c<d>e#f;g\"h\\i "))]),
        ]);
        assert_eq!(
            rfc2253_from_der(&der).unwrap(),
            "CN=\\ a\\=b\\+c\\<d\\>e\\#f\\;g\\\"h\\\\i\\ ,O=Sue\\, Grabbit and Runn"
        );
        let der = name(&[set(&[ava(CN, &utf8("nul\0x"))])]);
        assert_eq!(rfc2253_from_der(&der).unwrap(), "CN=nul\\00x");
        let der = name(&[set(&[ava(CN, &utf8("  "))])]);
        assert_eq!(rfc2253_from_der(&der).unwrap(), "CN=\\ \\ ");
        let der = name(&[set(&[ava(CN, &utf8("Zoë"))])]);
        assert_eq!(rfc2253_from_der(&der).unwrap(), "CN=Zoë");
    }

    #[test]
    fn other_attributes_are_oids_with_hex_values() {
        let mut ia5 = vec![0x16, 5];
        ia5.extend_from_slice(b"a@b.c");
        let der = name(&[
            set(&[ava(EMAIL, &ia5)]),
            set(&[ava(CN, &utf8("x")), ava(OU, &utf8("y"))]),
        ]);
        assert_eq!(
            rfc2253_from_der(&der).unwrap(),
            "CN=x+OU=y,1.2.840.113549.1.9.1=#16056140622e63"
        );
        // A known keyword with a non-string value is hex too.
        let der = name(&[set(&[ava(CN, &[0x02, 0x01, 0x05])])]);
        assert_eq!(rfc2253_from_der(&der).unwrap(), "CN=#020105");
        assert_eq!(rfc2253_from_der(&[0x30, 0x00]).unwrap(), "");
    }

    /// The subject of a certificate made with `openssl req -subj "/C=US/O=Acme, Inc./OU=dev\+ops+UID=k1/CN= kazoo client/emailAddress=kazoo@example.com"`,
    /// and what OpenJDK 17's `X500Principal.getName()` printed for it.
    #[test]
    fn an_openssl_subject_reads_as_java_printed_it() {
        let hex = "308180310b300906035504061302555331133011060355040a0c0a41636d652c20496e632e31\
                   22300e060355040b0c076465762b6f70733010060a0992268993f22c6401010c026b3131163014\
                   06035504030c0d206b617a6f6f20636c69656e743120301e06092a864886f70d01090116116b61\
                   7a6f6f406578616d706c652e636f6d";
        let der: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(
            rfc2253_from_der(&der).unwrap(),
            "1.2.840.113549.1.9.1=#16116b617a6f6f406578616d706c652e636f6d,CN=\\ kazoo client,\
             OU=dev\\+ops+UID=k1,O=Acme\\, Inc.,C=US"
        );
    }

    #[test]
    fn broken_der_is_an_error_never_a_panic() {
        let good = name(&[set(&[ava(CN, &utf8("client"))])]);
        for cut in 0..good.len() {
            assert!(rfc2253_from_der(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(rfc2253_from_der(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(rfc2253_from_der(&[0x30, 0x02, 0x31, 0x00]).is_err());
        assert!(rfc2253_from_der(&[0x31, 0x00]).is_err());
    }

    #[test]
    fn dn_validity_follows_x500principal() {
        for ok in [
            "",
            "CN=client",
            "CN=client one,O=Example Org,C=US",
            "cn=a; o=b",
            "CN=x+OU=y,1.2.840.113549.1.9.1=#1605614062",
            "OID.2.5.4.3=z",
            "CN=\\ a\\=b\\,c\\2C",
            "CN=\"quoted, with comma\"",
            "EMAILADDRESS=a@b.c, SERIALNUMBER=12",
        ] {
            assert!(is_valid_dn(ok), "{ok:?} should be valid");
        }
        for bad in [
            "client",
            "XX=y",
            "CN=a,",
            "CN=#abc",
            "CN=a\\",
            "CN=a\\zz",
            "CN=\"open",
            "=v",
            "1=v",
        ] {
            assert!(!is_valid_dn(bad), "{bad:?} should be invalid");
        }
    }
}
