//! SCIM filters (RFC 7644 §3.4.2.2) over [`DirectoryRecord`]s: parsed once, checked
//! against the attributes Roster has, then evaluated per record.
//!
//! Supported: `eq ne co sw ew gt ge lt le pr`, `and`, `or`, `not (…)`, parentheses, the
//! value path `emails[…]`, sub-attributes (`name.givenName`) and attribute names with
//! their schema URN. Attribute names and operators ignore case; string comparisons
//! ignore case except on `id` and `externalId` (case-exact in RFC 7643). Precedence:
//! `not`, then `and`, then `or`.

use super::DirectoryRecord;
use crate::domain::time::Timestamp;

/// The core User schema.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

/// Roster's extension of the User schema (the tier).
pub const ROSTER_SCHEMA: &str = "urn:roster:params:scim:schemas:extension:2.0:User";

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;

/// Deepest nesting of parentheses, `not` and value paths.
const MAX_DEPTH: usize = 32;

/// An attribute a filter may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attr {
    /// `id`.
    Id,
    /// `externalId`.
    ExternalId,
    /// `userName`.
    UserName,
    /// `displayName`.
    DisplayName,
    /// `name.givenName`.
    GivenName,
    /// `name.familyName`.
    FamilyName,
    /// `name.formatted`.
    Formatted,
    /// `emails.value` (or `emails`).
    EmailValue,
    /// `emails.type`.
    EmailType,
    /// `emails.primary`.
    EmailPrimary,
    /// `active`.
    Active,
    /// `locale` or `preferredLanguage`.
    Language,
    /// `timezone`.
    Timezone,
    /// `meta.created`.
    Created,
    /// `meta.lastModified`.
    LastModified,
    /// `meta.resourceType`.
    ResourceType,
    /// The extension's `tier`.
    Tier,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text { exact: bool },
    Bool,
    Time,
}

impl Attr {
    fn kind(self) -> Kind {
        match self {
            Attr::Id | Attr::ExternalId => Kind::Text { exact: true },
            Attr::Active | Attr::EmailPrimary => Kind::Bool,
            Attr::Created | Attr::LastModified => Kind::Time,
            _ => Kind::Text { exact: false },
        }
    }

    /// The attribute named by `path` (without its URN), if Roster has it.
    fn named(path: &str) -> Option<Self> {
        let p = path.to_ascii_lowercase();
        Some(match p.as_str() {
            "id" => Attr::Id,
            "externalid" => Attr::ExternalId,
            "username" => Attr::UserName,
            "displayname" => Attr::DisplayName,
            "name.givenname" => Attr::GivenName,
            "name.familyname" => Attr::FamilyName,
            "name.formatted" => Attr::Formatted,
            "emails" | "emails.value" => Attr::EmailValue,
            "emails.type" => Attr::EmailType,
            "emails.primary" => Attr::EmailPrimary,
            "active" => Attr::Active,
            "locale" | "preferredlanguage" => Attr::Language,
            "timezone" => Attr::Timezone,
            "meta.created" => Attr::Created,
            "meta.lastmodified" => Attr::LastModified,
            "meta.resourcetype" => Attr::ResourceType,
            "tier" => Attr::Tier,
            _ => return None,
        })
    }

    fn text(self, r: &DirectoryRecord) -> Option<String> {
        Some(match self {
            Attr::Id => r.id.to_string(),
            Attr::ExternalId => r.entry.external_id.clone()?,
            Attr::UserName | Attr::EmailValue => r.email.clone(),
            Attr::DisplayName => r.display_name.clone(),
            Attr::GivenName => r.entry.given_name.clone()?,
            Attr::FamilyName => r.entry.family_name.clone()?,
            Attr::Formatted => r.entry.formatted_name()?,
            Attr::EmailType => "work".to_owned(),
            Attr::Language => r.language.clone(),
            Attr::Timezone => r.timezone.clone(),
            Attr::ResourceType => "User".to_owned(),
            Attr::Tier => r.tier.as_str().to_owned(),
            Attr::Active | Attr::EmailPrimary | Attr::Created | Attr::LastModified => {
                return None;
            }
        })
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `eq`.
    Eq,
    /// `ne`.
    Ne,
    /// `co`.
    Co,
    /// `sw`.
    Sw,
    /// `ew`.
    Ew,
    /// `gt`.
    Gt,
    /// `ge`.
    Ge,
    /// `lt`.
    Lt,
    /// `le`.
    Le,
}

/// A comparison's value, checked against its attribute's type.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A string.
    Text(String),
    /// `true` or `false`.
    Bool(bool),
    /// A dateTime.
    Time(Timestamp),
    /// `null` (`eq null` means "not present").
    Null,
}

/// A parsed filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    /// `attr op value`.
    Compare(Attr, Op, Value),
    /// `attr pr`.
    Present(Attr),
    /// Both.
    And(Box<Filter>, Box<Filter>),
    /// Either.
    Or(Box<Filter>, Box<Filter>),
    /// Not.
    Not(Box<Filter>),
}

/// Why a filter was refused (SCIM `invalidFilter`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(pub String);

fn refuse<T>(why: impl Into<String>) -> Result<T, FilterError> {
    Err(FilterError(why.into()))
}

/// A lookup that narrows a filter to at most one user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// By id.
    Id(String),
    /// By email (`userName` or `emails.value`).
    Email(String),
    /// By external id.
    ExternalId(String),
}

impl Filter {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        if text.len() > MAX_FILTER_LEN {
            return refuse(format!("a filter may be at most {MAX_FILTER_LEN} bytes"));
        }
        let mut p = Parser {
            tokens: tokenize(text)?,
            at: 0,
            depth: 0,
        };
        let f = p.or(None)?;
        match p.tokens.get(p.at) {
            None => Ok(f),
            Some(t) => refuse(format!("unexpected {} after the filter", t.describe())),
        }
    }

    /// Whether `r` matches.
    pub fn matches(&self, r: &DirectoryRecord) -> bool {
        match self {
            Filter::And(a, b) => a.matches(r) && b.matches(r),
            Filter::Or(a, b) => a.matches(r) || b.matches(r),
            Filter::Not(f) => !f.matches(r),
            Filter::Present(a) => match a.kind() {
                Kind::Text { .. } => a.text(r).is_some_and(|v| !v.is_empty()),
                Kind::Bool | Kind::Time => true,
            },
            Filter::Compare(a, op, v) => compare(*a, *op, v, r),
        }
    }

    /// An index lookup every match must satisfy: an `eq` on `id`, `userName`,
    /// `emails.value` or `externalId`, alone or as a term of an `and`.
    pub fn lookup(&self) -> Option<Lookup> {
        match self {
            Filter::Compare(a, Op::Eq, Value::Text(v)) => match a {
                Attr::Id => Some(Lookup::Id(v.clone())),
                Attr::UserName | Attr::EmailValue => Some(Lookup::Email(v.clone())),
                Attr::ExternalId => Some(Lookup::ExternalId(v.clone())),
                _ => None,
            },
            Filter::And(a, b) => a.lookup().or_else(|| b.lookup()),
            _ => None,
        }
    }
}

fn compare(a: Attr, op: Op, v: &Value, r: &DirectoryRecord) -> bool {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (a.kind(), v) {
        (_, Value::Null) => {
            let present = Filter::Present(a).matches(r);
            return if op == Op::Eq { !present } else { present };
        }
        (Kind::Bool, Value::Bool(b)) => {
            let have = match a {
                Attr::Active => r.entry.is_active(),
                _ => true,
            };
            return (have == *b) == (op == Op::Eq);
        }
        (Kind::Time, Value::Time(t)) => {
            let have = if a == Attr::Created {
                r.created_at
            } else {
                r.updated_at
            };
            Some(have.cmp(t))
        }
        (Kind::Text { exact }, Value::Text(want)) => {
            let Some(have) = a.text(r) else {
                return op == Op::Ne;
            };
            let (have, want) = if exact {
                (have, want.clone())
            } else {
                (have.to_lowercase(), want.to_lowercase())
            };
            match op {
                Op::Co => return have.contains(&want),
                Op::Sw => return have.starts_with(&want),
                Op::Ew => return have.ends_with(&want),
                _ => Some(have.cmp(&want)),
            }
        }
        _ => None,
    };
    let Some(ord) = ord else { return false };
    match op {
        Op::Eq => ord == Ordering::Equal,
        Op::Ne => ord != Ordering::Equal,
        Op::Gt => ord == Ordering::Greater,
        Op::Ge => ord != Ordering::Less,
        Op::Lt => ord == Ordering::Less,
        Op::Le => ord != Ordering::Greater,
        Op::Co | Op::Sw | Op::Ew => false,
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Number(String),
    Open,
    Close,
    OpenBracket,
    CloseBracket,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Word(w) | Token::Number(w) => format!("`{w}`"),
            Token::Text(t) => format!("the string {t:?}"),
            Token::Open => "`(`".into(),
            Token::Close => "`)`".into(),
            Token::OpenBracket => "`[`".into(),
            Token::CloseBracket => "`]`".into(),
        }
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self, Token::Word(x) if x.eq_ignore_ascii_case(w))
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, FilterError> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | '[' | ']' => {
                chars.next();
                out.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    '[' => Token::OpenBracket,
                    _ => Token::CloseBracket,
                });
            }
            '"' => {
                // A JSON string: find its end (an unescaped quote), then let JSON decode it.
                chars.next();
                let mut escaped = false;
                let mut end = None;
                for (j, c) in chars.by_ref() {
                    match (escaped, c) {
                        (true, _) => escaped = false,
                        (false, '\\') => escaped = true,
                        (false, '"') => {
                            end = Some(j);
                            break;
                        }
                        _ => {}
                    }
                }
                let Some(end) = end else {
                    return refuse("a string is not closed");
                };
                match serde_json::from_str::<String>(&text[i..=end]) {
                    Ok(s) => out.push(Token::Text(s)),
                    Err(_) => return refuse(format!("a malformed string at byte {i}")),
                }
            }
            _ => {
                let mut end = text.len();
                while let Some(&(j, c)) = chars.peek() {
                    if c.is_whitespace() || "()[]\"".contains(c) {
                        end = j;
                        break;
                    }
                    chars.next();
                }
                let word = &text[i..end];
                if word.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
                    out.push(Token::Number(word.to_owned()));
                } else {
                    out.push(Token::Word(word.to_owned()));
                }
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn deeper(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return refuse(format!("a filter may nest at most {MAX_DEPTH} deep"));
        }
        Ok(())
    }

    /// `or` of `and`s. Inside a value path, `within` names the multi-valued attribute.
    fn or(&mut self, within: Option<&str>) -> Result<Filter, FilterError> {
        let mut f = self.and(within)?;
        while self.peek().is_some_and(|t| t.is_word("or")) {
            self.next();
            f = Filter::Or(Box::new(f), Box::new(self.and(within)?));
        }
        Ok(f)
    }

    fn and(&mut self, within: Option<&str>) -> Result<Filter, FilterError> {
        let mut f = self.term(within)?;
        while self.peek().is_some_and(|t| t.is_word("and")) {
            self.next();
            f = Filter::And(Box::new(f), Box::new(self.term(within)?));
        }
        Ok(f)
    }

    fn close(&mut self, want: &Token) -> Result<(), FilterError> {
        match self.next() {
            Some(t) if &t == want => {
                self.depth -= 1;
                Ok(())
            }
            Some(t) => refuse(format!(
                "expected {} but found {}",
                want.describe(),
                t.describe()
            )),
            None => refuse(format!("expected {} at the end", want.describe())),
        }
    }

    fn term(&mut self, within: Option<&str>) -> Result<Filter, FilterError> {
        match self.next() {
            Some(Token::Open) => {
                self.deeper()?;
                let f = self.or(within)?;
                self.close(&Token::Close)?;
                Ok(f)
            }
            Some(t) if t.is_word("not") => {
                match self.next() {
                    Some(Token::Open) => {}
                    _ => return refuse("`not` must be followed by a filter in parentheses"),
                }
                self.deeper()?;
                let f = self.or(within)?;
                self.close(&Token::Close)?;
                Ok(Filter::Not(Box::new(f)))
            }
            Some(Token::Word(path)) => self.attribute_expression(&path, within),
            Some(t) => refuse(format!("expected an attribute, found {}", t.describe())),
            None => refuse("the filter ends where an attribute was expected"),
        }
    }

    fn attribute_expression(
        &mut self,
        path: &str,
        within: Option<&str>,
    ) -> Result<Filter, FilterError> {
        let path = strip_schema(path)?;
        if self.peek() == Some(&Token::OpenBracket) {
            if within.is_some() {
                return refuse("a value path cannot hold another");
            }
            if !path.eq_ignore_ascii_case("emails") {
                return refuse(format!(
                    "`{path}[…]`: only `emails` is a multi-valued attribute Roster filters on"
                ));
            }
            self.next();
            self.deeper()?;
            let f = self.or(Some("emails"))?;
            self.close(&Token::CloseBracket)?;
            return Ok(f);
        }
        let full = match within {
            Some(parent) => format!("{parent}.{path}"),
            None => path.to_owned(),
        };
        let Some(attr) = Attr::named(&full) else {
            return refuse(format!("unknown attribute `{full}`"));
        };
        let op = match self.next() {
            Some(Token::Word(w)) => w.to_ascii_lowercase(),
            Some(t) => return refuse(format!("expected an operator, found {}", t.describe())),
            None => return refuse(format!("`{full}` needs an operator")),
        };
        let op = match op.as_str() {
            "pr" => return Ok(Filter::Present(attr)),
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            other => return refuse(format!("unknown operator `{other}`")),
        };
        let value = match self.next() {
            Some(Token::Text(s)) => match attr.kind() {
                Kind::Time => Value::Time(parse_time(&s)?),
                Kind::Text { .. } => Value::Text(s),
                Kind::Bool => return refuse(format!("`{full}` is true or false, not a string")),
            },
            Some(t) if t.is_word("true") || t.is_word("false") => Value::Bool(t.is_word("true")),
            Some(t) if t.is_word("null") => Value::Null,
            Some(t) => return refuse(format!("expected a value, found {}", t.describe())),
            None => return refuse(format!("`{full} {op:?}` needs a value")),
        };
        let fits = match (&value, attr.kind()) {
            (Value::Null, _) => matches!(op, Op::Eq | Op::Ne),
            (Value::Bool(_), Kind::Bool) => matches!(op, Op::Eq | Op::Ne),
            (Value::Time(_), Kind::Time) => !matches!(op, Op::Co | Op::Sw | Op::Ew),
            (Value::Text(_), Kind::Text { .. }) => true,
            _ => false,
        };
        if !fits {
            return refuse(format!("`{full}` cannot be compared that way"));
        }
        Ok(Filter::Compare(attr, op, value))
    }
}

/// `path` without its schema URN: the core schema's and the extension's are known.
fn strip_schema(path: &str) -> Result<&str, FilterError> {
    if !path.to_ascii_lowercase().starts_with("urn:") {
        return Ok(path);
    }
    for schema in [USER_SCHEMA, ROSTER_SCHEMA] {
        if let Some(rest) = path.get(schema.len()..)
            && path[..schema.len()].eq_ignore_ascii_case(schema)
            && let Some(attr) = rest.strip_prefix(':')
        {
            let is_tier = attr.eq_ignore_ascii_case("tier");
            if is_tier == (schema == ROSTER_SCHEMA) {
                return Ok(attr);
            }
        }
    }
    refuse(format!("unknown attribute `{path}`"))
}

fn parse_time(s: &str) -> Result<Timestamp, FilterError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| FilterError(format!("{s:?} is not an RFC 3339 dateTime")))
}

#[cfg(test)]
mod tests;
