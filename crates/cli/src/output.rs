//! How every command prints its result, in one place: with `--json`, one line of compact JSON
//! on stdout for a script to parse; without it, text for a person. A command hands over the
//! value and the function that writes its text, and says nothing else about the mode.

use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::BoxError;

/// Who reads a command's output: a person, or a program that asked for `--json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Human,
    Json,
}

impl Output {
    /// The output a command's `--json` flag asks for.
    pub fn from_flag(json: bool) -> Self {
        if json { Self::Json } else { Self::Human }
    }

    /// Prints a command's result on stdout: `value` as one line of compact JSON, or the text
    /// `human` writes from it.
    pub fn print<T: Serialize + ?Sized>(
        self,
        value: &T,
        human: impl FnOnce(&mut String, &T) -> fmt::Result,
    ) -> Result<(), BoxError> {
        print!("{}", self.render(value, human)?);
        Ok(())
    }

    /// [`Output::print`] on stderr: how a failure is reported.
    pub fn eprint<T: Serialize + ?Sized>(
        self,
        value: &T,
        human: impl FnOnce(&mut String, &T) -> fmt::Result,
    ) -> Result<(), BoxError> {
        eprint!("{}", self.render(value, human)?);
        Ok(())
    }

    /// What [`Output::print`] writes.
    pub fn render<T: Serialize + ?Sized>(
        self,
        value: &T,
        human: impl FnOnce(&mut String, &T) -> fmt::Result,
    ) -> Result<String, BoxError> {
        let mut text = String::new();
        match self {
            Self::Json => writeln!(text, "{}", serde_json::to_string(value)?)?,
            Self::Human => human(&mut text, value)?,
        }
        Ok(text)
    }

    /// Runs `say` for a person only: progress and warnings along the way, which would break
    /// the one JSON object a script expects.
    pub fn if_human(self, say: impl FnOnce()) {
        if self == Self::Human {
            say();
        }
    }
}

/// Prints `value` as one line of compact JSON, whatever the flag: for commands whose only
/// form is JSON.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<(), BoxError> {
    Output::Json.print(value, |_, _| Ok(()))
}

/// Writes `value` as indented JSON, ending in a line break: the JSON a person reads.
pub fn pretty_json<T: Serialize + ?Sized>(w: &mut String, value: &T) -> fmt::Result {
    let text = serde_json::to_string_pretty(value).map_err(|_| fmt::Error)?;
    writeln!(w, "{text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Made {
        id: &'static str,
        tags: [&'static str; 2],
    }

    const MADE: Made = Made {
        id: "a1",
        tags: ["x", "y"],
    };

    fn text(w: &mut String, m: &Made) -> fmt::Result {
        writeln!(w, "made {}", m.id)?;
        writeln!(w, "tags: {}", m.tags.join(", "))
    }

    #[test]
    fn json_is_one_compact_line_in_field_order_and_skips_the_text() {
        let out = Output::from_flag(true).render(&MADE, |_, _| panic!("text rendered"));
        assert_eq!(out.unwrap(), "{\"id\":\"a1\",\"tags\":[\"x\",\"y\"]}\n");
    }

    #[test]
    fn a_person_gets_exactly_the_text() {
        let out = Output::from_flag(false).render(&MADE, text).unwrap();
        assert_eq!(out, "made a1\ntags: x, y\n");
        assert_eq!(Output::Human.render(&MADE, |_, _| Ok(())).unwrap(), "");
    }

    #[test]
    fn progress_is_for_a_person_only() {
        let mut said = Vec::new();
        Output::Human.if_human(|| said.push("human"));
        Output::Json.if_human(|| said.push("json"));
        assert_eq!(said, ["human"]);
    }

    #[test]
    fn pretty_json_is_indented_in_field_order() {
        let mut w = String::new();
        pretty_json(&mut w, &MADE).unwrap();
        assert_eq!(
            w,
            "{\n  \"id\": \"a1\",\n  \"tags\": [\n    \"x\",\n    \"y\"\n  ]\n}\n"
        );
    }
}

/// A Unix time in ms as `YYYY-MM-DD HH:MM:SSZ` (UTC), for human-readable lists.
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (proleptic Gregorian), after H. Hinnant.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod utc_tests {
    #[test]
    fn known_instants() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(super::utc(951_782_400_000), "2000-02-29 00:00:00Z");
        assert_eq!(super::utc(1_798_761_599_999), "2026-12-31 23:59:59Z");
    }
}
