//! Transforms `filter` (keep events matching `when`) and `route` (send events to named
//! outputs by condition; `inputs = ["NAME.errors"]`, plus `NAME._unmatched`).
//!
//! ```toml
//! [transforms.important]
//! type = "filter"
//! inputs = ["parsed"]
//! when = { level_at_least = "warn" }
//!
//! [transforms.split]
//! type = "route"
//! inputs = ["parsed"]
//! route.errors = { level_at_least = "error" }
//! route.retries = { event = "retry" }
//! ```
//! An event matching several routes goes to each of them.

use crate::{Emit, OptionError, Outcome, Transform, TransformConfig};
use serde::Deserialize;
use sluice_config::condition::Condition;
use sluice_event::Batch;

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Keep the events matching this condition; the others are dropped (counted as `filtered`).
    pub when: Condition,
}

impl TransformConfig for FilterConfig {
    fn build(&self, _ctx: &crate::TransformContext) -> Result<Box<dyn Transform>, OptionError> {
        Ok(Box::new(Filter { when: self.when.clone() }))
    }
}

#[derive(Clone)]
pub struct Filter {
    when: Condition,
}

impl Transform for Filter {
    fn fork(&self) -> Option<Box<dyn Transform>> {
        Some(Box::new(self.clone()))
    }

    fn process(&mut self, mut batch: Batch, out: &mut dyn Emit) -> Outcome {
        let before = batch.events.len();
        batch.events.retain(|e| self.when.eval(e));
        let dropped = (before - batch.events.len()) as u64;
        if !batch.events.is_empty() {
            out.emit(None, batch);
        }
        Outcome { dropped, reason: "filtered", errors: 0 }
    }
}

/// Name of the output that receives events no route matched.
pub const UNMATCHED: &str = "_unmatched";

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Named outputs and their conditions, in order: `route.errors = { level_at_least = "error" }`;
    /// consumers read `NAME.errors`, and `NAME._unmatched` gets what no route matched.
    #[schemars(with = "std::collections::BTreeMap<String, sluice_config::condition::Condition>")]
    pub route: indexmap_like::OrderedRoutes,
}

mod indexmap_like {
    use serde::de::{Deserializer, Error as _};
    use serde::Deserialize;
    use sluice_config::condition::Condition;

    /// Routes in declaration order.
    #[derive(Debug, Clone)]
    pub struct OrderedRoutes(pub Vec<(String, Condition)>);

    impl<'de> Deserialize<'de> for OrderedRoutes {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let t = toml::Table::deserialize(d)?;
            let mut v = Vec::new();
            for (k, c) in &t {
                let cond = Condition::from_toml(c).map_err(|e| D::Error::custom(format!("route `{k}`: {e}")))?;
                v.push((k.clone(), cond));
            }
            Ok(OrderedRoutes(v))
        }
    }
}

impl TransformConfig for RouteConfig {
    fn build(&self, _ctx: &crate::TransformContext) -> Result<Box<dyn Transform>, OptionError> {
        if self.route.0.is_empty() {
            return Err(OptionError::new(
                "route",
                "define at least one route, e.g. route.errors = { level_at_least = \"error\" }",
            ));
        }
        if let Some((name, _)) = self.route.0.iter().find(|(n, _)| n == UNMATCHED || n.contains('.')) {
            return Err(OptionError::new("route", format!("route name `{name}` is reserved or contains `.`")));
        }
        Ok(Box::new(Route { routes: self.route.0.clone() }))
    }
}

#[derive(Clone)]
pub struct Route {
    routes: Vec<(String, Condition)>,
}

impl Transform for Route {
    fn fork(&self) -> Option<Box<dyn Transform>> {
        Some(Box::new(self.clone()))
    }

    fn process(&mut self, batch: Batch, out: &mut dyn Emit) -> Outcome {
        let mut per: Vec<Vec<sluice_event::Event>> = vec![Vec::new(); self.routes.len() + 1];
        let Batch { events, acks } = batch;
        for e in events {
            let mut hits = self.routes.iter().enumerate().filter(|(_, (_, c))| c.eval(&e)).map(|(i, _)| i);
            match hits.next() {
                None => per[self.routes.len()].push(e),
                Some(first) => {
                    for other in hits {
                        per[other].push(e.clone());
                    }
                    per[first].push(e);
                }
            }
        }
        for (i, evs) in per.into_iter().enumerate() {
            if evs.is_empty() {
                continue;
            }
            let name = if i == self.routes.len() { UNMATCHED } else { self.routes[i].0.as_str() };
            out.emit(Some(name), Batch { events: evs, acks: acks.clone() });
        }
        Outcome::default()
    }

    fn outputs(&self) -> Vec<String> {
        let mut v: Vec<String> = self.routes.iter().map(|(n, _)| n.clone()).collect();
        v.push(UNMATCHED.to_string());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_event::{Event, Origin, OriginInfo, Timestamp, Value};

    fn events() -> Vec<Event> {
        let info = OriginInfo::new("s", None);
        ["error", "info", "warn", "error"]
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let mut e = Event::from_line(
                    Bytes::from(format!("m{i}")),
                    Timestamp(0),
                    Origin { info: info.clone(), offset: 0 },
                );
                e.fields.insert("level", Value::from(*l));
                if i == 3 {
                    e.fields.insert("event", Value::from("retry"));
                }
                e
            })
            .collect()
    }

    #[test]
    fn filter_keeps_matching() {
        let c: FilterConfig = toml::from_str("when = { level_at_least = \"warn\" }").unwrap();
        let mut f = c.build(&Default::default()).unwrap();
        let mut got = Vec::new();
        let o = f.process(Batch::new(events()), &mut |_: Option<&str>, b: Batch| got.extend(b.events));
        assert_eq!(got.len(), 3);
        assert_eq!(o.dropped, 1);
        assert_eq!(o.reason, "filtered");
    }

    #[test]
    fn route_by_condition_with_unmatched() {
        let c: RouteConfig =
            toml::from_str("route.errors = { level = \"error\" }\nroute.retries = { event = \"retry\" }").unwrap();
        let mut r = c.build(&Default::default()).unwrap();
        assert_eq!(r.outputs(), vec!["errors", "retries", "_unmatched"]);
        let (tx, rx) = std::sync::mpsc::channel();
        let mut b = Batch::new(events());
        b.acks.push(sluice_event::Ack::new(1, 0, tx));
        let mut got: Vec<(String, Vec<String>)> = Vec::new();
        r.process(b, &mut |o: Option<&str>, b: Batch| {
            got.push((o.unwrap().to_string(), b.events.iter().map(|e| e.message().to_string()).collect()));
        });
        assert_eq!(
            got,
            vec![
                ("errors".to_string(), vec!["m0".to_string(), "m3".to_string()]),
                ("retries".to_string(), vec!["m3".to_string()]),
                ("_unmatched".to_string(), vec!["m1".to_string(), "m2".to_string()]),
            ]
        );
        // Every output batch dropped: the input is acknowledged once.
        assert_eq!(rx.try_recv().unwrap().seq, 0);
        assert!(rx.try_recv().is_err());
        assert!(toml::from_str::<RouteConfig>("route.x = { level_at_least = \"loud\" }").is_err());
    }
}
