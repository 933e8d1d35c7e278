//! The command mix: which commands the clients send, in what proportions.
//!
//! `--mix place=40,capture=30,fail=5,refund=10,cancel=5,ship=10` gives each command a
//! relative weight (not necessarily summing to 100); a command left out weighs 0. The mix
//! is what the clients *choose*; the report shows what they *sent*, which differs when a
//! chosen command has no order it is valid for (a client then places an order instead).

use std::fmt;

use serde::Serialize;

/// The mix `ledger bench` uses unless told otherwise.
pub const DEFAULT_MIX: &str = "place=40,capture=30,fail=5,refund=10,cancel=5,ship=10";

/// A command the load generator sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Place,
    Capture,
    Fail,
    Refund,
    Cancel,
    Ship,
}

impl Kind {
    pub const ALL: [Kind; 6] =
        [Kind::Place, Kind::Capture, Kind::Fail, Kind::Refund, Kind::Cancel, Kind::Ship];

    /// The name used in `--mix` and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Place => "place",
            Kind::Capture => "capture",
            Kind::Fail => "fail",
            Kind::Refund => "refund",
            Kind::Cancel => "cancel",
            Kind::Ship => "ship",
        }
    }

    /// The route it is sent to, as the ledger's metrics name it.
    pub fn route(self) -> &'static str {
        match self {
            Kind::Place => "POST /v1/orders",
            Kind::Capture => "POST /v1/orders/{id}/payments",
            Kind::Fail => "POST /v1/orders/{id}/payment-failures",
            Kind::Refund => "POST /v1/orders/{id}/refunds",
            Kind::Cancel => "POST /v1/orders/{id}/cancellation",
            Kind::Ship => "POST /v1/orders/{id}/shipment",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Relative weights of the commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 6],
}

impl Mix {
    /// Parses `name=weight,…`. Names are those of [`Kind::name`], each at most once;
    /// weights are whole numbers; `place` must weigh something (every other command needs
    /// an order to act on).
    pub fn parse(raw: &str) -> Result<Mix, String> {
        let mut weights = [0u32; 6];
        let mut seen = [false; 6];
        for part in raw.split(',').map(str::trim).filter(|part| !part.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected name=weight, e.g. place=40"))?;
            let kind = Kind::from_name(name.trim()).ok_or_else(|| {
                format!(
                    "`{}`: unknown command (one of {})",
                    name.trim(),
                    Kind::ALL.map(Kind::name).join(", ")
                )
            })?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("`{part}`: the weight must be a whole number ≥ 0"))?;
            if weight > 1_000_000 {
                return Err(format!("`{part}`: weights above 1000000 make no sense"));
            }
            if std::mem::replace(&mut seen[kind.index()], true) {
                return Err(format!("`{}` is given twice", kind.name()));
            }
            weights[kind.index()] = weight;
        }
        if weights[Kind::Place.index()] == 0 {
            return Err("place needs a weight above 0: every other command acts on an order \
                        a client placed"
                .to_owned());
        }
        Ok(Mix { weights })
    }

    pub fn weight(&self, kind: Kind) -> u32 {
        self.weights[kind.index()]
    }

    pub fn total(&self) -> u32 {
        self.weights.iter().sum()
    }

    /// The command for `roll` in `0..total()`: each kind owns a run of rolls as long as
    /// its weight.
    pub fn pick(&self, roll: u32) -> Kind {
        let mut remaining = roll;
        for kind in Kind::ALL {
            let weight = self.weight(kind);
            if remaining < weight {
                return kind;
            }
            remaining -= weight;
        }
        Kind::Place
    }

    /// A random command, drawn by weight.
    pub fn draw(&self, rng: &mut fastrand::Rng) -> Kind {
        self.pick(rng.u32(0..self.total()))
    }
}

impl Default for Mix {
    fn default() -> Self {
        Mix { weights: [40, 30, 5, 10, 5, 10] }
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = Kind::ALL
            .into_iter()
            .filter(|kind| self.weight(*kind) > 0)
            .map(|kind| format!("{}={}", kind.name(), self.weight(kind)))
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl Serialize for Mix {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(Kind::ALL.len()))?;
        for kind in Kind::ALL {
            map.serialize_entry(kind.name(), &self.weight(kind))?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_mix_parses_to_its_weights() {
        let mix = Mix::parse(DEFAULT_MIX).expect("default mix");
        assert_eq!(mix, Mix::default());
        assert_eq!(mix.total(), 100);
        assert_eq!(mix.weight(Kind::Capture), 30);
        assert_eq!(mix.to_string(), DEFAULT_MIX);
    }

    #[test]
    fn left_out_commands_weigh_nothing_and_spaces_are_tolerated() {
        let mix = Mix::parse(" place = 3 , ship=1,").expect("mix");
        assert_eq!(mix.weight(Kind::Place), 3);
        assert_eq!(mix.weight(Kind::Ship), 1);
        assert_eq!(mix.weight(Kind::Refund), 0);
        assert_eq!(mix.to_string(), "place=3,ship=1");
    }

    #[test]
    fn bad_mixes_are_refused_with_a_reason() {
        for (raw, needle) in [
            ("place=40,teleport=3", "unknown command"),
            ("place", "expected name=weight"),
            ("place=-1", "whole number"),
            ("place=1,place=2", "twice"),
            ("capture=10", "place needs a weight"),
            ("", "place needs a weight"),
        ] {
            let error = Mix::parse(raw).expect_err(raw);
            assert!(error.contains(needle), "{raw}: {error}");
        }
    }

    #[test]
    fn picks_follow_the_weights() {
        let mix = Mix::parse("place=2,capture=1,ship=1").expect("mix");
        let picks: Vec<Kind> = (0..mix.total()).map(|roll| mix.pick(roll)).collect();
        assert_eq!(picks, [Kind::Place, Kind::Place, Kind::Capture, Kind::Ship]);
        let mut rng = fastrand::Rng::with_seed(7);
        let places = (0..4000).filter(|_| mix.draw(&mut rng) == Kind::Place).count();
        assert!((1800..2200).contains(&places), "{places} places of 4000");
    }
}
