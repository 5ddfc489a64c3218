use super::*;
use crate::analytics::churn::features::Group;
use crate::analytics::evaluate::auc;
use crate::analytics::sim::{SimConfig, SimUser, simulate};

const NOW: Timestamp = Timestamp::from_millis(20_800 * 86_400_000 + 43_200_000);

fn member(u: &SimUser) -> Member<'_> {
    Member {
        id: u.id,
        tier: u.tier,
        created_at: u.created_at,
        consented: true,
        history: &u.history,
        taste: None,
        feedback: None,
        usage: &crate::domain::profile::UsageCounters::ZERO,
        refusals: None,
    }
}

fn population(users: usize, seed: u64) -> Vec<SimUser> {
    simulate(SimConfig {
        users,
        seed,
        now: NOW,
        days: 730,
        horizon_days: 14,
        keep_events: false,
    })
    .collect()
}

#[test]
fn the_model_nearly_matches_the_oracle_on_a_planted_population() {
    let people = population(6_000, 17);
    let mut trainer = Trainer::new(NOW, 14);
    for u in &people {
        trainer.add(&member(u));
    }
    let mut steps = Vec::new();
    let model = trainer
        .train(1, NOW, |p| {
            if let TrainProgress::Step { log_loss, .. } = p {
                steps.push(log_loss);
            }
        })
        .unwrap();
    assert!(model.usable);
    assert!(model.fits());
    let mut other = model.clone();
    other.features.pop();
    assert!(
        !other.fits(),
        "a model of another feature set does not score"
    );
    assert!(
        steps.len() >= 2 && steps.last() < steps.first(),
        "{steps:?}"
    );
    assert_eq!(model.features.len(), features::N_FEATURES);

    // The oracle on the same held-out users.
    let (mut oracle, mut labels, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    let probe = Trainer::new(NOW, 14);
    for u in people.iter().filter(|u| held_out(u.id)) {
        let (Some(p), Some((x, churned))) = (u.churn_probability, probe.row(&member(u))) else {
            continue;
        };
        oracle.push(p);
        labels.push(churned);
        ours.push(model.logistic().predict(&x));
    }
    assert_eq!(labels.len() as u64, model.evaluation.rows);
    let (oracle_auc, model_auc) = (auc(&oracle, &labels), auc(&ours, &labels));
    assert!((model_auc - model.evaluation.auc).abs() < 1e-12);
    assert!(
        model_auc >= 0.97 * oracle_auc,
        "model AUC {model_auc:.4} against the oracle's {oracle_auc:.4}"
    );
    assert!(
        model.evaluation.calibration_gap < 0.05,
        "reliability gap {:.4}: {:?}",
        model.evaluation.calibration_gap,
        model.evaluation.reliability
    );

    // A user planted as lapsing, once active most days: recency or trend explain it.
    let cutoff = day_of(NOW) - 14;
    let lapsing = people
        .iter()
        .find(|u| u.lapsing_at(cutoff) && u.p > 0.6 && u.lapse_day.is_some_and(|l| l + 20 > cutoff))
        .unwrap();
    let prediction = model.predict(&member(lapsing), NOW);
    assert_eq!(prediction.band, Band::High, "{prediction:?}");
    // The features are grouped by what they are about: the top three include recency
    // or trend, pushing toward churn.
    assert!(
        prediction.reasons[..3]
            .iter()
            .any(|r| [Group::Recency, Group::Trend].contains(&r.group) && r.contribution > 0.0),
        "{prediction:?}"
    );
    assert!(
        prediction
            .reasons
            .windows(2)
            .all(|w| w[0].contribution.abs() >= w[1].contribution.abs())
    );
    // The reasons are the model's own terms: they add up to the log-odds.
    let x = features::features(
        &lapsing.history,
        lapsing.created_at,
        lapsing.tier,
        day_of(NOW) + 1,
    );
    let all: f64 = model.logistic().contributions(&x).iter().sum();
    let p = crate::analytics::logistic::sigmoid(model.intercept + all);
    assert!((p - prediction.probability).abs() < 1e-12);
}

#[test]
fn too_little_history_is_a_clear_refusal() {
    let people = population(40, 3);
    let mut trainer = Trainer::new(NOW, 14);
    for u in &people {
        trainer.add(&member(u));
    }
    assert!(matches!(
        trainer.train(1, NOW, |_| ()),
        Err(TrainError::TooLittleData { .. })
    ));
    // Without the consent, nobody is a row.
    let mut trainer = Trainer::new(NOW, 14);
    for u in &people {
        trainer.add(&Member {
            consented: false,
            ..member(u)
        });
    }
    assert_eq!(trainer.rows(), (0, 0));
}

#[test]
fn the_hold_out_is_a_fifth_by_id() {
    let held = (0..10_000).filter(|_| held_out(UserId::generate())).count();
    assert!((1_700..2_300).contains(&held), "{held}");
    let id = UserId::generate();
    assert_eq!(held_out(id), held_out(id));
}
