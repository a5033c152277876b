//! A per-session cookie jar, as a browser keeps one for a single site: every cookie an
//! answer sets is sent back on the session's later requests. Paths, domains and expiry
//! dates are not needed for one site behind one balancer; a cookie set with
//! `Max-Age=0` or an empty value is removed, as frameworks do on logout.

/// One `Set-Cookie` header, reduced to what the jar needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetCookie {
    pub name: String,
    pub value: String,
    /// `Max-Age=0` (or negative) or an empty value: the cookie is to be forgotten.
    pub removes: bool,
}

impl SetCookie {
    /// Parses `name=value; Attr=…`; `None` for a header without `name=`.
    pub fn parse(header: &str) -> Option<SetCookie> {
        let mut parts = header.split(';');
        let (name, value) = parts.next()?.split_once('=')?;
        let name = name.trim();
        if name.is_empty() {
            return None;
        }
        let value = value.trim().trim_matches('"').to_string();
        let expired = parts.any(|attr| {
            attr.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("max-age")
                    && v.trim().parse::<i64>().is_ok_and(|s| s <= 0)
            })
        });
        Some(SetCookie {
            name: name.to_string(),
            removes: expired || value.is_empty(),
            value,
        })
    }
}

/// The cookies of one session, in the order they were first set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jar {
    cookies: Vec<(String, String)>,
}

impl Jar {
    /// A jar holding `cookies`, in order (a spilled session's, read back).
    pub fn from_pairs(cookies: Vec<(String, String)>) -> Self {
        Jar { cookies }
    }

    /// Every cookie as `(name, value)`, in the order they were first set.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.cookies
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn set(&mut self, cookie: &SetCookie) {
        let at = self.cookies.iter().position(|(n, _)| *n == cookie.name);
        match (at, cookie.removes) {
            (Some(i), true) => {
                self.cookies.remove(i);
            }
            (Some(i), false) => self.cookies[i].1 = cookie.value.clone(),
            (None, true) => {}
            (None, false) => self
                .cookies
                .push((cookie.name.clone(), cookie.value.clone())),
        }
    }

    /// The `Cookie` header to send, `None` while the jar is empty.
    pub fn header(&self) -> Option<String> {
        if self.cookies.is_empty() {
            return None;
        }
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        Some(pairs.join("; "))
    }

    /// The first cookie as `name=value`: how the session is named in reports.
    pub fn first(&self) -> Option<String> {
        self.cookies.first().map(|(n, v)| format!("{n}={v}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(jar: &mut Jar, header: &str) {
        jar.set(&SetCookie::parse(header).unwrap());
    }

    #[test]
    fn parses_the_set_cookie_of_real_frameworks() {
        // express-session, Spring Session, Django, tower-sessions / actix-session.
        for (header, name) in [
            ("connect.sid=s%3Aabc.def; Path=/; HttpOnly", "connect.sid"),
            ("SESSION=ZjE2; Path=/; HttpOnly; SameSite=Lax", "SESSION"),
            ("sessionid=k2j3; expires=Thu, 10 Dec 2026 08:00:00 GMT; HttpOnly; Max-Age=1209600; Path=/; SameSite=Lax", "sessionid"),
            ("id=\"Xy1\"; HttpOnly; SameSite=Strict; Secure; Path=/", "id"),
        ] {
            let c = SetCookie::parse(header).unwrap();
            assert_eq!(c.name, name);
            assert!(!c.removes, "{header}");
            assert!(!c.value.contains('"'), "{header}");
        }
        assert_eq!(SetCookie::parse("no-equals-sign"), None);
        assert_eq!(SetCookie::parse("=v"), None);
    }

    #[test]
    fn the_jar_sends_back_what_was_set_and_forgets_what_was_removed() {
        let mut jar = Jar::default();
        assert_eq!(jar.header(), None);
        set(&mut jar, "sessionid=a; Path=/");
        set(&mut jar, "SRV=s1; path=/");
        set(&mut jar, "sessionid=b; Path=/");
        assert_eq!(jar.header().as_deref(), Some("sessionid=b; SRV=s1"));
        assert_eq!(jar.get("sessionid"), Some("b"));
        assert_eq!(jar.first().as_deref(), Some("sessionid=b"));
        set(&mut jar, "sessionid=; Max-Age=0; Path=/");
        assert_eq!(jar.header().as_deref(), Some("SRV=s1"));
        set(&mut jar, "SRV=x; Max-Age=-1");
        assert_eq!(jar.header(), None);
    }
}
