//! What real helpdesk exports call their ticket-number and contact columns: one table of
//! words, used by `init-mapping` to write a `key:` and a `contact:`, and by `import` to
//! say which columns could be the key of a mapping that has none.

use super::fold;

/// Words that say "the number of": `Nro`, `No.`, `N°`, `Número`, `ID`, `#`, …
const NUMBER_WORDS: &[&str] = &[
    "nro", "no", "n", "nº", "n°", "num", "numero", "number", "nr", "#", "id", "codigo", "cod",
    "code",
];

/// Words naming the ticket itself, in the Spanish and English of helpdesk exports.
const TICKET_WORDS: &[&str] = &[
    "ticket",
    "tickets",
    "caso",
    "case",
    "radicado",
    "solicitud",
    "incidente",
    "incidencia",
    "pqr",
    "pqrs",
    "pqrsd",
    "requerimiento",
    "request",
    "issue",
];

/// Headers that are a ticket number on their own.
const KEY_ALONE: &[&str] = &[
    "ticket",
    "radicado",
    "consecutivo",
    "caso",
    "id",
    "folio",
    "ticketid",
    "caseid",
];

/// Words that say "e-mail address" (`E-mail` folds to `e mail`).
const EMAIL_WORDS: &[&str] = &["correo", "email", "mail", "emails", "e mail"];

/// Whose e-mail: the customer's makes the best contact …
const CUSTOMER_WORDS: &[&str] = &[
    "cliente",
    "usuario",
    "contacto",
    "contact",
    "customer",
    "client",
    "solicitante",
    "requester",
    "ciudadano",
];

/// … and the staff's never: it is the `responsible` or the `owner`.
const STAFF_WORDS: &[&str] = &[
    "asesor",
    "agente",
    "agent",
    "responsable",
    "responsible",
    "asignado",
    "assignee",
    "propietario",
    "owner",
    "creador",
    "tecnico",
];

/// A header as words: folded (case, accents, spaces), punctuation as word breaks, and
/// `#` a word of its own (`Ticket #`, `#Ticket`).
fn words(header: &str) -> Vec<String> {
    let folded = fold(header);
    let mut spaced = String::with_capacity(folded.len() + 4);
    for ch in folded.chars() {
        match ch {
            '#' => spaced.push_str(" # "),
            '.' | '_' | '-' | ':' | '/' | '(' | ')' => spaced.push(' '),
            // `N°`, `Nº`: the sign stays on its letter, so `N°` is one word.
            other => spaced.push(other),
        }
    }
    spaced.split_whitespace().map(str::to_string).collect()
}

fn has(words: &[String], table: &[&str]) -> bool {
    words.iter().any(|w| table.contains(&w.as_str()))
        || table
            .iter()
            .filter(|t| t.contains(' '))
            .any(|t| words.join(" ").contains(*t))
}

/// Whether a header names a ticket number: `Nro Ticket`, `No. Ticket`, `N° caso`,
/// `Número de caso`, `ID Ticket`, `Ticket ID`, `Ticket #`, `Consecutivo`, `Radicado`, …
/// but not `Tipo de caso` or `ID Cliente`.
pub fn is_ticket_number(header: &str) -> bool {
    let words = words(header);
    let joined = words.join("");
    if KEY_ALONE.contains(&joined.as_str()) {
        return true;
    }
    let numbered = words
        .iter()
        .any(|w| NUMBER_WORDS.contains(&w.as_str()) || w.starts_with("n°") || w == "nº");
    (numbered && has(&words, TICKET_WORDS)) || words.first().is_some_and(|w| w == "consecutivo")
}

/// How well a header names the case's contact e-mail: `Some(2)` for the customer's
/// (`Correo del cliente`, `Contact email`), `Some(1)` for a plain `Correo`/`Email`/
/// `Contacto`, `None` for anything else (the agent's e-mail included).
pub fn contact_rank(header: &str) -> Option<u8> {
    let words = words(header);
    if has(&words, STAFF_WORDS) {
        return None;
    }
    let email = has(&words, EMAIL_WORDS);
    let customer = has(&words, CUSTOMER_WORDS);
    match (email, customer) {
        (true, true) => Some(2),
        (true, false) => Some(1),
        // `Contacto` alone: the contact column, whatever it holds.
        (false, true)
            if words.len() == 1 && matches!(words[0].as_str(), "contacto" | "contact") =>
        {
            Some(1)
        }
        _ => None,
    }
}

/// Whether a header names the agent's side (`Correo del asesor`): never the contact.
pub fn names_staff(header: &str) -> bool {
    has(&words(header), STAFF_WORDS)
}

/// The columns of `headers` that look like ticket numbers, for messages.
pub fn ticket_number_columns(headers: &[String]) -> Vec<&str> {
    headers
        .iter()
        .filter(|h| is_ticket_number(h))
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every header style recognised, and the near misses that must not be.
    const TICKET_NUMBERS: &[(&str, bool)] = &[
        ("Ticket", true),
        ("Nro Ticket", true),
        ("Nro. Ticket", true),
        ("No. Ticket", true),
        ("No Ticket", true),
        ("N° Ticket", true),
        ("Nº de caso", true),
        ("N° caso", true),
        ("Número de caso", true),
        ("Numero de Ticket", true),
        ("Número Radicado", true),
        ("Radicado", true),
        ("No. Radicado", true),
        ("ID Ticket", true),
        ("Id_Caso", true),
        ("ticket_id", true),
        ("TicketID", true),
        ("Ticket ID", true),
        ("Ticket #", true),
        ("#Ticket", true),
        ("Ticket No.", true),
        ("Ticket Number", true),
        ("Case Number", true),
        ("Case ID", true),
        ("Consecutivo", true),
        ("Consecutivo PQRS", true),
        ("Código del caso", true),
        ("Nro. Solicitud", true),
        ("ID", true),
        ("Caso", true),
        ("Tipo de caso", false),
        ("Estado del ticket", false),
        ("Descripción del caso", false),
        ("Número de teléfono", false),
        ("ID Cliente", false),
        ("Documento", false),
        ("Notas", false),
    ];

    #[test]
    fn each_ticket_number_header_style_is_recognised_and_near_misses_are_not() {
        let wrong: Vec<_> = TICKET_NUMBERS
            .iter()
            .filter(|(header, expected)| is_ticket_number(header) != *expected)
            .collect();
        assert!(wrong.is_empty(), "misread headers: {wrong:?}");
    }

    const CONTACTS: &[(&str, Option<u8>)] = &[
        ("Correo", Some(1)),
        ("Email", Some(1)),
        ("E-mail", Some(1)),
        ("e-mail", Some(1)),
        ("Mail", Some(1)),
        ("Correo electrónico", Some(1)),
        ("Contacto", Some(1)),
        ("Contact", Some(1)),
        ("Correo cliente", Some(2)),
        ("Correo del cliente", Some(2)),
        ("Correo electrónico del cliente", Some(2)),
        ("Email cliente", Some(2)),
        ("E-mail del cliente", Some(2)),
        ("Contact email", Some(2)),
        ("Customer Email", Some(2)),
        ("Email del solicitante", Some(2)),
        ("Correo del asesor", None),
        ("Email agente", None),
        ("Agent email", None),
        ("Cliente", None),
        ("Teléfono del contacto", None),
    ];

    #[test]
    fn each_contact_header_style_is_ranked_and_staff_e_mails_are_not_contacts() {
        let wrong: Vec<_> = CONTACTS
            .iter()
            .filter(|(header, expected)| contact_rank(header) != *expected)
            .map(|(header, expected)| (header, expected, contact_rank(header)))
            .collect();
        assert!(
            wrong.is_empty(),
            "misread headers (header, wanted, got): {wrong:?}"
        );
    }

    #[test]
    fn the_key_candidates_of_a_header_row_are_named_in_order() {
        let headers: Vec<String> = ["Asunto", "Nro Ticket", "Tipo de caso", "ID Ticket"]
            .map(String::from)
            .to_vec();
        assert_eq!(ticket_number_columns(&headers), ["Nro Ticket", "ID Ticket"]);
    }
}
