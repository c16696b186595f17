//! The mapping file as written: YAML → these types, nothing checked against the data yet.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

/// A whole mapping file. See `mappings/README.md` for every key with an example.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingSpec {
    /// The CRM operation (tenant); `--operation` overrides it.
    pub operation: Option<String>,
    /// API fields (`case-type`, `responsible`, …) → where their value comes from.
    pub fields: BTreeMap<String, Field>,
    /// Custom fields of the CRM form: label → where the value comes from.
    #[serde(default)]
    pub form: BTreeMap<String, Field>,
    /// What identifies a ticket across runs: a list of columns, a template, or `payload`
    /// (a hash of the whole payload: any change to a row makes a new ticket). `import`
    /// refuses a mapping without one.
    pub key: Option<KeySpec>,
    /// What to do with a second row carrying a key already seen in the file.
    #[serde(default)]
    pub on_duplicate_key: DuplicatePolicy,
    /// The fields that identify a ticket in the CRM when `reconcile` looks a row up, first
    /// the one it is searched by: API field names and `form.<label>`. Default:
    /// `[description, contact, case-type]` and every `form` label the CRM returns.
    pub lookup: Option<Vec<String>>,
    /// The contacts the cases name (`contact`, the contact's e-mail): looked up in the CRM
    /// before any case is sent, and optionally created first.
    pub contacts: Option<ContactsSpec>,
}

/// The mapping's `contacts:` section.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactsSpec {
    /// Look every distinct contact up in the CRM before sending any case: rows naming one
    /// it does not have are invalid (implied by `create`).
    #[serde(default)]
    pub check: bool,
    /// Create the contacts the CRM lacks (`custom/insertMany.php`) before their cases:
    /// `namecontact`, `telephonecontact`, `idcontact`, each written as a field is.
    /// `emailcontact` is always the case's `contact`.
    pub create: Option<BTreeMap<String, Field>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DuplicatePolicy {
    /// The second row is invalid, naming the first.
    #[default]
    Reject,
    /// Send both (the ledger will skip the second as already created).
    Send,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(untagged)]
pub enum KeySpec {
    Columns(Vec<String>),
    Template(String),
}

impl std::fmt::Display for KeySpec {
    /// As written in a mapping: `[Sistema, Ticket]`, `"{Sistema}-{Ticket}"`, `payload`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySpec::Columns(names) => write!(f, "[{}]", names.join(", ")),
            KeySpec::Template(t) if t.trim() == "payload" => f.write_str("payload"),
            KeySpec::Template(t) => write!(f, "{t:?}"),
        }
    }
}

/// Where one value comes from, how it is cleaned and what it must satisfy.
/// Written either as a bare column name (`contact: Correo`) or as a map.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub column: Option<String>,
    pub value: Option<String>,
    pub template: Option<String>,
    /// Used when the value is empty after the transforms.
    pub default: Option<String>,
    #[serde(default)]
    pub transforms: Vec<Transform>,
    pub required: Option<bool>,
    #[serde(default)]
    pub email: bool,
    pub max_length: Option<usize>,
    pub one_of: Option<Vec<String>>,
    pub pattern: Option<String>,
    /// Typed custom-field values: `{type: telephone, country: CO, code: "+57"}` wraps the
    /// value as `{"type":"telephone","value":…,"country":"CO","code":"+57"}`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// A cleaning step, applied in order.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    Trim,
    CollapseSpaces,
    Lower,
    Upper,
    Title,
    /// Value map, matched after folding case, accents and spaces; `"*"` is the default.
    Map(BTreeMap<String, String>),
    /// Re-format a date: `{from: ["%d/%m/%Y"], to: "%Y-%m-%d"}`.
    Date(DateSpec),
    /// The first phone number of the value, in E.164: `{country_code: "+57"}` or `{region: CO}`.
    Phone(PhoneSpec),
    /// Keep at most this many characters.
    Truncate(usize),
    /// Regex replace: `{pattern: "\\s+", with: " "}`.
    Replace(ReplaceSpec),
    /// One part of a value: `{separator: " - ", index: 0}` (0-based; a missing part is empty).
    /// With it, one column can feed several fields.
    Split(SplitSpec),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitSpec {
    pub separator: String,
    pub index: usize,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DateSpec {
    pub from: Vec<String>,
    #[serde(default = "DateSpec::default_to")]
    pub to: String,
}

impl DateSpec {
    fn default_to() -> String {
        "%Y-%m-%d".into()
    }
}

/// A phone number read with libphonenumber's metadata and written in E.164 (`+573001234567`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneSpec {
    /// The country calling code of numbers written without one: `"+57"`.
    pub country_code: Option<String>,
    /// Or the region (ISO 3166 code) those numbers belong to: `CO`. Needed to tell apart
    /// regions that share a code (`+1`: `US`, `CA`, …); one is enough.
    pub region: Option<String>,
    /// What becomes of an extension (`ext 12`): dropped, or kept as `;ext=12`.
    #[serde(default)]
    pub extension: PhoneExtension,
    /// A value with no phone number in it: the row is invalid, or the value is kept as typed
    /// (with a warning).
    #[serde(default)]
    pub on_invalid: OnInvalidPhone,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PhoneExtension {
    /// The number alone.
    #[default]
    Drop,
    /// Appended in RFC 3966 form: `+573001234567;ext=12`.
    Keep,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnInvalidPhone {
    /// The row is invalid, and the message quotes the value.
    #[default]
    Error,
    /// The value is sent as typed, and the row carries a warning.
    Keep,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceSpec {
    pub pattern: String,
    #[serde(default)]
    pub with: String,
}

/// A field as written: `contact: Correo` is shorthand for `contact: {column: Correo}`.
#[derive(Debug, Clone)]
pub struct Field(pub FieldSpec);

impl JsonSchema for Field {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Field".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let spec = generator.subschema_for::<FieldSpec>();
        schemars::json_schema!({
            "description": "A column name, or a map with column/value/template, transforms and checks.",
            "anyOf": [{"type": "string", "description": "The column of the file (shorthand for {column: …})."}, spec]
        })
    }
}

/// The JSON Schema of a mapping file, as shipped in `mappings/schema.json`.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(MappingSpec);
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        field_from_str_or_map(deserializer).map(Field)
    }
}

fn field_from_str_or_map<'de, D>(deserializer: D) -> Result<FieldSpec, D::Error>
where
    D: de::Deserializer<'de>,
{
    struct FieldVisitor;
    impl<'de> Visitor<'de> for FieldVisitor {
        type Value = FieldSpec;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a column name, or a map with column/value/template")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldSpec, E> {
            Ok(FieldSpec {
                column: Some(v.to_string()),
                ..FieldSpec::default()
            })
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FieldSpec, A::Error> {
            FieldSpec::deserialize(de::value::MapAccessDeserializer::new(map))
        }
    }
    deserializer.deserialize_any(FieldVisitor)
}
