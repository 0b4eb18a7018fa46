//! Reading a SOAP envelope: version, namespaces, limits, and the body's element as a small tree.
//!
//! quick-xml never expands DTD entities, but a DOCTYPE still arrives as an event: SOAP forbids
//! DTDs, so any DOCTYPE is refused. Namespaces are checked on the envelope, its children and every
//! element of the body, because a right local name in a wrong namespace is not our message.

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use super::{SoapVersion, SOAP11_NS, SOAP12_NS, VD_NS};

/// Any namespace but the three the parser tells apart.
const OTHER_NS: &str = "";

/// Bounds a hostile document runs into long before it costs anything.
#[derive(Debug, Clone, Copy)]
pub struct XmlLimits {
    pub max_depth: usize,
    pub max_elements: usize,
    pub max_attributes: usize,
    pub max_attribute_len: usize,
    /// Text of any element but `donnees`.
    pub max_text_len: usize,
    /// Text of `donnees` (the base64 of an encrypted prescription).
    pub max_payload_len: usize,
}

impl Default for XmlLimits {
    fn default() -> Self {
        XmlLimits {
            max_depth: 32,
            max_elements: 20_000,
            max_attributes: 16,
            max_attribute_len: 1024,
            max_text_len: 64 * 1024,
            max_payload_len: 1024 * 1024,
        }
    }
}

/// An element of the body, in the `urn:visiodroits:v1` namespace or not.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    pub name: String,
    /// Whether the element is in the Visiodroits namespace.
    pub in_vd: bool,
    pub children: Vec<Element>,
    pub text: String,
    /// The local names of its attributes, in any namespace (namespace declarations aside): the
    /// message schema has none, and a value hidden in one must still be seen by the identity
    /// checks.
    pub attributes: Vec<String>,
}

impl Element {
    /// The first child `name` in the Visiodroits namespace.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.in_vd && c.name == name)
    }

    /// Every child `name` in the Visiodroits namespace.
    pub(crate) fn children_named<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children
            .iter()
            .filter(move |c| c.in_vd && c.name == name)
    }

    /// The text content, trimmed of the whitespace that pretty-printing adds.
    pub fn value(&self) -> &str {
        self.text.trim()
    }

    /// Children not listed in `allowed` (or not in our namespace), by name.
    pub(crate) fn unexpected_children(&self, allowed: &[&str]) -> Vec<String> {
        self.children
            .iter()
            .filter(|c| !c.in_vd || !allowed.contains(&c.name.as_str()))
            .map(|c| c.name.clone())
            .collect()
    }

    /// Whether an element named `name` appears anywhere below (in any namespace).
    pub(crate) fn contains_named(&self, names: &[&str]) -> bool {
        self.has_attribute_named(names)
            || self
                .children
                .iter()
                .any(|c| names.contains(&c.name.as_str()) || c.contains_named(names))
    }

    /// Whether one of its own attributes has one of `names` as local name, in any namespace.
    pub(crate) fn has_attribute_named(&self, names: &[&str]) -> bool {
        self.attributes.iter().any(|a| names.contains(&a.as_str()))
    }
}

/// A parsed request envelope.
#[derive(Debug)]
pub struct Envelope {
    pub version: SoapVersion,
    /// The first (and only) child of `Body`.
    pub body: Element,
}

/// Why an envelope was refused. Each maps to a SOAP Fault (6000, `Sender`); messages are fixed
/// French texts that never echo the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("XML mal formé")]
    Malformed,
    #[error("encodage non UTF-8")]
    Encoding,
    #[error("DOCTYPE interdit")]
    Doctype,
    #[error("instruction de traitement interdite")]
    ProcessingInstruction,
    #[error("profondeur XML excessive")]
    TooDeep,
    #[error("trop d'éléments XML")]
    TooManyElements,
    #[error("trop d'attributs sur un élément")]
    TooManyAttributes,
    #[error("attribut trop long")]
    AttributeTooLong,
    #[error("texte trop long")]
    TextTooLong,
    #[error("entité inconnue")]
    UnknownEntity,
    #[error("préfixe d'espace de noms non déclaré")]
    UnboundPrefix,
    #[error("le document n'est pas une enveloppe SOAP")]
    NotAnEnvelope,
    #[error("version SOAP non prise en charge")]
    VersionMismatch,
    #[error("la version SOAP ne correspond pas au Content-Type")]
    ContentTypeMismatch,
    #[error("Body absent")]
    NoBody,
    #[error("Body vide")]
    EmptyBody,
    #[error("plusieurs éléments dans Body")]
    SeveralBodyElements,
    #[error("contenu inattendu dans l'enveloppe")]
    UnexpectedContent,
    #[error("en-tête SOAP obligatoire non compris")]
    MustUnderstand,
}

/// Parses `text` (already checked to be UTF-8) as a SOAP envelope of version `expected` (from the
/// Content-Type).
pub fn parse(
    text: &str,
    expected: SoapVersion,
    limits: &XmlLimits,
) -> Result<Envelope, EnvelopeError> {
    if text.starts_with('\u{feff}') || text.contains('\0') {
        return Err(EnvelopeError::Encoding);
    }
    let mut reader = NsReader::from_str(text);
    {
        let cfg = reader.config_mut();
        cfg.trim_text(false);
        cfg.expand_empty_elements = true;
        cfg.check_end_names = true;
        cfg.check_comments = true;
    }

    // Path of open elements: (local name, namespace URI) — envelope level only.
    let mut depth = 0usize;
    let mut elements = 0usize;
    let mut version: Option<SoapVersion> = None;
    let mut seen_body = false;
    let mut seen_header = false;
    let mut body_element: Option<Element> = None;
    // Stack of the body tree under construction.
    let mut stack: Vec<Element> = Vec::new();
    // Where we are at envelope level: 0 outside, 1 in Envelope, 2 in Header/Body, 3+ inside.
    let mut in_header = false;
    let mut in_body = false;
    let mut root_done = false;

    loop {
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|_| EnvelopeError::Malformed)?;
        // Only three namespaces matter; naming them here spares a String per event.
        let ns_uri: Option<&'static str> = match ns {
            ResolveResult::Bound(n) => Some(match n.as_ref() {
                b if b == SOAP12_NS.as_bytes() => SOAP12_NS,
                b if b == SOAP11_NS.as_bytes() => SOAP11_NS,
                b if b == VD_NS.as_bytes() => VD_NS,
                _ => OTHER_NS,
            }),
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(_) => return Err(EnvelopeError::UnboundPrefix),
        };
        match event {
            Event::Decl(d) => {
                if let Some(enc) = d.encoding() {
                    let enc = enc.map_err(|_| EnvelopeError::Malformed)?;
                    if !enc.eq_ignore_ascii_case(b"utf-8") {
                        return Err(EnvelopeError::Encoding);
                    }
                }
            }
            Event::DocType(_) => return Err(EnvelopeError::Doctype),
            Event::PI(_) => return Err(EnvelopeError::ProcessingInstruction),
            Event::Comment(_) => {}
            Event::Start(start) => {
                depth += 1;
                elements += 1;
                if depth > limits.max_depth {
                    return Err(EnvelopeError::TooDeep);
                }
                if elements > limits.max_elements {
                    return Err(EnvelopeError::TooManyElements);
                }
                // The body's elements (any start inside Body) keep their attributes' names; the
                // others are only checked.
                let mut attributes = Vec::new();
                check_attributes(&start, limits, in_body.then_some(&mut attributes))?;
                let local_name = start.local_name();
                let local = String::from_utf8_lossy(local_name.as_ref());
                match depth {
                    1 => {
                        if root_done {
                            return Err(EnvelopeError::Malformed);
                        }
                        if local != "Envelope" {
                            return Err(EnvelopeError::NotAnEnvelope);
                        }
                        let v = match ns_uri {
                            Some(SOAP12_NS) => SoapVersion::V12,
                            Some(SOAP11_NS) => SoapVersion::V11,
                            _ => return Err(EnvelopeError::VersionMismatch),
                        };
                        if v != expected {
                            return Err(EnvelopeError::ContentTypeMismatch);
                        }
                        version = Some(v);
                    }
                    2 => {
                        let env_ns = version.map(SoapVersion::namespace);
                        if ns_uri != env_ns {
                            return Err(EnvelopeError::UnexpectedContent);
                        }
                        match local.as_ref() {
                            "Header" if !seen_header && !seen_body => {
                                seen_header = true;
                                in_header = true;
                            }
                            "Body" if !seen_body => {
                                seen_body = true;
                                in_body = true;
                            }
                            _ => return Err(EnvelopeError::UnexpectedContent),
                        }
                    }
                    _ if in_header => {
                        if depth == 3 && must_understand(&reader, &start, version) {
                            return Err(EnvelopeError::MustUnderstand);
                        }
                    }
                    _ if in_body => {
                        if depth == 3 && body_element.is_some() {
                            return Err(EnvelopeError::SeveralBodyElements);
                        }
                        stack.push(Element {
                            in_vd: ns_uri == Some(VD_NS),
                            name: local.into_owned(),
                            children: Vec::new(),
                            text: String::new(),
                            attributes,
                        });
                    }
                    _ => return Err(EnvelopeError::UnexpectedContent),
                }
            }
            Event::End(_) => {
                if in_body && depth >= 3 {
                    let done = stack.pop().ok_or(EnvelopeError::Malformed)?;
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(done),
                        None => body_element = Some(done),
                    }
                } else if depth == 2 {
                    in_header = false;
                    in_body = false;
                } else if depth == 1 {
                    root_done = true;
                }
                depth = depth.checked_sub(1).ok_or(EnvelopeError::Malformed)?;
            }
            Event::Text(t) => {
                let s = t.xml_content().map_err(|_| EnvelopeError::Malformed)?;
                push_text(&mut stack, &s, depth, in_body, limits)?;
            }
            Event::CData(t) => {
                let s = t.decode().map_err(|_| EnvelopeError::Malformed)?;
                push_text(&mut stack, &s, depth, in_body, limits)?;
            }
            Event::GeneralRef(r) => {
                let resolved: String = if r.is_char_ref() {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        _ => return Err(EnvelopeError::UnknownEntity),
                    }
                } else {
                    let name = r.decode().map_err(|_| EnvelopeError::Malformed)?;
                    quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or(EnvelopeError::UnknownEntity)?
                        .to_string()
                };
                push_text(&mut stack, &resolved, depth, in_body, limits)?;
            }
            Event::Empty(_) => return Err(EnvelopeError::Malformed),
            Event::Eof => break,
        }
    }
    if !root_done || depth != 0 {
        return Err(if version.is_none() {
            EnvelopeError::NotAnEnvelope
        } else {
            EnvelopeError::Malformed
        });
    }
    let version = version.ok_or(EnvelopeError::NotAnEnvelope)?;
    if !seen_body {
        return Err(EnvelopeError::NoBody);
    }
    let body = body_element.ok_or(EnvelopeError::EmptyBody)?;
    Ok(Envelope { version, body })
}

/// Parses a standalone document holding one element (the decrypted content of an encrypted
/// prescription) with the same checks and limits as an envelope's body.
pub(crate) fn parse_fragment(text: &str, limits: &XmlLimits) -> Result<Element, EnvelopeError> {
    let mut rest = text.trim_start();
    if let Some(decl) = rest.strip_prefix("<?xml") {
        let end = decl.find("?>").ok_or(EnvelopeError::Malformed)?;
        let attrs = &decl[..end];
        let lower = attrs.to_ascii_lowercase();
        if lower.contains("encoding") && !lower.contains("utf-8") {
            return Err(EnvelopeError::Encoding);
        }
        rest = &decl[end + 2..];
    }
    let wrapped = format!(
        "<e:Envelope xmlns:e=\"{}\"><e:Body>{rest}</e:Body></e:Envelope>",
        super::SOAP12_NS
    );
    parse(&wrapped, SoapVersion::V12, limits).map(|env| env.body)
}

fn push_text(
    stack: &mut [Element],
    s: &str,
    depth: usize,
    in_body: bool,
    limits: &XmlLimits,
) -> Result<(), EnvelopeError> {
    match stack.last_mut() {
        Some(el) if in_body => {
            let max = if el.name == "donnees" {
                limits.max_payload_len
            } else {
                limits.max_text_len
            };
            if el.text.len() + s.len() > max {
                return Err(EnvelopeError::TextTooLong);
            }
            // Whitespace before any text is what `value` trims anyway: not keeping it spares an
            // allocation for each element that only holds others (pretty-printing's indentation).
            // Nothing kept, nothing counted against the text limit: the body's size bounds it.
            if el.text.is_empty() && s.trim().is_empty() {
                return Ok(());
            }
            el.text.push_str(s);
            Ok(())
        }
        // Outside the body's element, only whitespace is allowed (Header content is skipped).
        _ if depth >= 3 => Ok(()),
        _ if s.trim().is_empty() => Ok(()),
        _ if depth == 0 => Err(EnvelopeError::NotAnEnvelope),
        _ => Err(EnvelopeError::UnexpectedContent),
    }
}

/// Checks an element's attributes against the limits and, when `names` is given, collects their
/// local names (namespace declarations aside), in one pass.
fn check_attributes(
    start: &BytesStart<'_>,
    limits: &XmlLimits,
    mut names: Option<&mut Vec<String>>,
) -> Result<(), EnvelopeError> {
    let mut count = 0;
    for attr in start.attributes().with_checks(true) {
        let attr = attr.map_err(|_| EnvelopeError::Malformed)?;
        count += 1;
        if count > limits.max_attributes {
            return Err(EnvelopeError::TooManyAttributes);
        }
        if attr.value.len() > limits.max_attribute_len {
            return Err(EnvelopeError::AttributeTooLong);
        }
        if let Some(names) = names.as_deref_mut() {
            if attr.key.as_namespace_binding().is_none() {
                names.push(String::from_utf8_lossy(attr.key.local_name().as_ref()).into_owned());
            }
        }
    }
    Ok(())
}

/// Whether a header block asks to be understood (we understand none).
fn must_understand(
    reader: &NsReader<&[u8]>,
    start: &BytesStart<'_>,
    version: Option<SoapVersion>,
) -> bool {
    let Some(version) = version else { return false };
    start.attributes().flatten().any(|a| {
        let (ns, local) = reader.resolve_attribute(a.key);
        let in_env =
            matches!(ns, ResolveResult::Bound(n) if n.as_ref() == version.namespace().as_bytes());
        in_env && local.as_ref() == b"mustUnderstand" && matches!(a.value.as_ref(), b"1" | b"true")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env12(body: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:vd="urn:visiodroits:v1"><s:Body>{body}</s:Body></s:Envelope>"#
        )
    }

    fn parse12(text: &str) -> Result<Envelope, EnvelopeError> {
        parse(text, SoapVersion::V12, &XmlLimits::default())
    }

    #[test]
    fn reads_the_body_element_with_text_and_entities() {
        let env = parse12(&env12(
            "<vd:demande_services><vd:entete><vd:id_logiciel>A &amp; B&#33;</vd:id_logiciel></vd:entete></vd:demande_services>",
        ))
        .unwrap();
        assert_eq!(env.body.name, "demande_services");
        assert!(env.body.in_vd);
        let id = env
            .body
            .child("entete")
            .unwrap()
            .child("id_logiciel")
            .unwrap();
        assert_eq!(id.value(), "A & B!");
    }

    #[test]
    fn refuses_hostile_or_foreign_documents() {
        let cases: Vec<(String, EnvelopeError)> = vec![
            ("<!DOCTYPE x [<!ENTITY a 'b'>]><x/>".into(), EnvelopeError::Doctype),
            ("not xml at all".into(), EnvelopeError::NotAnEnvelope),
            ("<a><b></a>".into(), EnvelopeError::NotAnEnvelope),
            (env12("<vd:a><vd:b></vd:a>"), EnvelopeError::Malformed),
            (
                r#"<s:Envelope xmlns:s="urn:other"><s:Body/></s:Envelope>"#.into(),
                EnvelopeError::VersionMismatch,
            ),
            (
                r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><x/></s:Body></s:Envelope>"#.into(),
                EnvelopeError::ContentTypeMismatch,
            ),
            (env12("<vd:a/><vd:b/>"), EnvelopeError::SeveralBodyElements),
            (env12(""), EnvelopeError::EmptyBody),
            (env12("<vd:a>&xxe;</vd:a>"), EnvelopeError::UnknownEntity),
            (env12("<p:a/>"), EnvelopeError::UnboundPrefix),
            (env12(&format!("{}{}", "<vd:a>".repeat(40), "</vd:a>".repeat(40))), EnvelopeError::TooDeep),
            (env12("<?php x?>"), EnvelopeError::ProcessingInstruction),
        ];
        for (doc, expected) in cases {
            assert_eq!(parse12(&doc).unwrap_err(), expected, "document: {doc}");
        }
    }

    #[test]
    fn fragments_are_read_like_a_body() {
        let el = parse_fragment(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<vd:prescription xmlns:vd=\"urn:visiodroits:v1\"><vd:id_prescription>7</vd:id_prescription></vd:prescription>",
            &XmlLimits::default(),
        )
        .unwrap();
        assert_eq!((el.name.as_str(), el.in_vd), ("prescription", true));
        assert_eq!(el.child("id_prescription").unwrap().value(), "7");
        assert_eq!(
            parse_fragment("<!DOCTYPE x><x/>", &XmlLimits::default()).unwrap_err(),
            EnvelopeError::Doctype
        );
        assert_eq!(
            parse_fragment("<a/><b/>", &XmlLimits::default()).unwrap_err(),
            EnvelopeError::SeveralBodyElements
        );
    }

    #[test]
    fn header_blocks_that_must_be_understood_are_refused() {
        let doc = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header><h:x xmlns:h="urn:h" s:mustUnderstand="true"/></s:Header><s:Body><vd:a xmlns:vd="urn:visiodroits:v1"/></s:Body></s:Envelope>"#;
        assert_eq!(parse12(doc).unwrap_err(), EnvelopeError::MustUnderstand);
        let ignorable = doc.replace(r#" s:mustUnderstand="true""#, "");
        assert!(parse12(&ignorable).is_ok());
    }

    #[test]
    fn elements_keep_their_namespace() {
        let env = parse12(&env12(
            r#"<vd:demande_services><x:entete xmlns:x="urn:other"/></vd:demande_services>"#,
        ))
        .unwrap();
        assert!(env.body.child("entete").is_none());
        assert_eq!(
            env.body.unexpected_children(&["entete"]),
            vec!["entete".to_string()]
        );
    }

    /// The vendor client's requests: each one a well-formed envelope this reader accepts.
    mod client_messages {
        use super::*;
        use uuid::Uuid;
        use visiodroits_client::messages::*;

        fn messages() -> Messages {
            Messages {
                version: SoapVersion::V12,
                software: Software::default(),
                pharmacist: Pharmacist {
                    ps_id: "810001234565".into(),
                    structure: Some("750000001".into()),
                },
            }
        }

        fn prescription() -> Prescription {
            Prescription {
                id: 7,
                date: "2026-03-10".into(),
                prescriber: "123456789".into(),
                billing_date: "2026-03-15".into(),
                lines: vec![Line {
                    id: 1,
                    prestation: "PH7".into(),
                    execution: "2026-03-15".into(),
                    quantity: 2,
                    unit_price: "10.00".into(),
                    billed: "20.00".into(),
                    base: "20.00".into(),
                    rate: 65,
                    amo: "13.00".into(),
                    cip: Some("3400930000001".into()),
                    lpp: None,
                }],
            }
        }

        #[test]
        fn every_request_is_a_well_formed_envelope_our_reader_accepts() {
            let m = messages();
            let id = Uuid::new_v4();
            let rights = RightsRequest {
                nir: "1850578006084".into(),
                key: "91".into(),
                birth: "19850512".into(),
                rank: 1,
                amc: "12345678".into(),
                adherent: Some("A<1>&".into()),
                date: "2026-03-15".into(),
                domains: vec!["PHAR".into()],
            };
            let limits = XmlLimits::default();
            for (xml, first) in [
                (m.services(id, None), "demande_services"),
                (m.rights(id, &rights), "demande_droits"),
                (
                    m.tarification(id, "d", true, &Payload::Clear(prescription())),
                    "demande_tarification",
                ),
                (m.cancellation(id, "d", "a", 7), "demande_annulation"),
            ] {
                let env = parse(&xml, SoapVersion::V12, &limits)
                    .unwrap_or_else(|e| panic!("{first}: {e:?}\n{xml}"));
                assert_eq!(env.body.name, first);
            }
            let xml = m.rights(id, &rights);
            assert!(xml.contains("<vd:numero_adherent>A&lt;1&gt;&amp;</vd:numero_adherent>"));
            assert_eq!(field(&xml, "numero_adherent").as_deref(), Some("A<1>&"));
        }
    }
}
