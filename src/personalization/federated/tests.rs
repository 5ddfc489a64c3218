use rand::SeedableRng;
use rand::rngs::StdRng;

use super::sim::{default_plan, devices, error, planted, run_rounds};
use super::*;

fn rules(noise: f32) -> Rules {
    Rules {
        clip_norm: 2.0,
        noise_multiplier: noise,
        example_cap: 100,
    }
}

#[test]
fn the_default_model_gives_the_plain_mean_closeness() {
    let m = SoundModel::default();
    let item = [0, 65_535, 32_768, 0, 0, 0, 0, 0];
    let taste = [0, 0, 32_768, 65_535, 0, 0, 0, 0];
    // Known: tempo (1), energy (0), valence (1), danceability (0).
    let s = m.sound(&item, &taste, 0b1111);
    assert!((s - 0.5).abs() < 1e-6, "{s}");
    // A model that cares only for energy sees only the far energy.
    let mut energy = m;
    energy.weights = [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, -3.0];
    assert!(energy.sound(&item, &taste, 0b1111) < 1e-6);
    assert_eq!(SoundModel::from_params(&m.params()), m);
}

#[test]
fn ten_rounds_move_the_model_towards_the_planted_one_with_and_without_noise() {
    let truth = planted();
    let population = devices(7, 300, 120, &truth);
    let plan = default_plan();
    let start = error(&SoundModel::default(), &truth);
    let quiet = run_rounds(&population, 10, &plan, &rules(0.0), 1);
    let errors: Vec<f32> = quiet.iter().map(|m| error(m, &truth)).collect();
    // The error shrinks round after round, to well under half of where it started.
    assert!(errors[0] < start, "{start} {errors:?}");
    assert!(errors.windows(2).all(|w| w[1] < w[0]), "{errors:?}");
    assert!(errors[9] < 0.5 * start, "{start} {errors:?}");
    // With the noise the server adds (z = 3 over 300 devices), within 1.5 times the
    // noiseless error of the same rounds.
    let noisy = run_rounds(&population, 10, &plan, &rules(3.0), 2);
    let noisy_error = error(&noisy[9], &truth);
    eprintln!("start {start:.3}, noiseless {errors:.3?}, noisy {noisy_error:.3}");
    assert!(noisy_error < start * 0.6, "{start} {noisy_error}");
    assert!(
        noisy_error <= 1.5 * errors[9],
        "{noisy_error} vs {}",
        errors[9]
    );
}

#[test]
fn a_huge_update_is_clipped_and_its_influence_bounded() {
    let r = rules(0.0);
    let honest: Vec<Contribution> = (0..9)
        .map(|_| Contribution::of(&[0.1; DIM], 100, &r).unwrap())
        .collect();
    let huge = Contribution::of(&[1e30; DIM], 1_000_000, &r).unwrap();
    assert!(huge.clipped && !honest[0].clipped);
    assert!(huge.norm > 1e30);
    let norm: f32 = huge.delta.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - r.clip_norm).abs() < 1e-3, "{norm}");
    // A million examples weigh no more than the cap's hundred.
    assert_eq!(huge.weight, 1.0);
    let global = SoundModel::default();
    let mut rng = StdRng::seed_from_u64(1);
    let with = aggregate(&global, honest.iter().chain([&huge]), &r, 10.0, &mut rng).unwrap();
    let without = aggregate(&global, &honest, &r, 10.0, &mut rng).unwrap();
    // One of ten devices moves the mean by at most S/10 (plus its share of the rest).
    let moved = error(&with.model, &without.model);
    assert!(moved <= r.clip_norm / 10.0 + 0.05, "{moved}");
    assert_eq!(with.clipped, 1);
}

#[test]
fn bad_updates_are_named() {
    let r = rules(1.0);
    assert_eq!(
        Contribution::of(&[0.0; 3], 10, &r),
        Err(BadUpdate::Dimension(3))
    );
    let mut nan = [0.0; DIM];
    nan[4] = f32::NAN;
    assert_eq!(Contribution::of(&nan, 10, &r), Err(BadUpdate::NotFinite(4)));
    assert_eq!(
        Contribution::of(&[0.0; DIM], 0, &r),
        Err(BadUpdate::NoExamples)
    );
    // Few examples weigh their share of the cap.
    assert_eq!(Contribution::of(&[0.0; DIM], 25, &r).unwrap().weight, 0.25);
}

#[test]
fn nothing_to_aggregate_publishes_nothing_and_the_noise_has_its_stated_size() {
    let r = rules(3.0);
    let mut rng = StdRng::seed_from_u64(3);
    assert!(aggregate(&SoundModel::default(), &[], &r, 400.0, &mut rng).is_none());
    // 400 zero updates of weight 1 over D = 400: each parameter moves by
    // N(0, (zS/400)²).
    let zero: Vec<Contribution> = (0..400)
        .map(|_| Contribution::of(&[0.0; DIM], 100, &r).unwrap())
        .collect();
    let mut squares = 0.0f64;
    let runs = 200;
    for _ in 0..runs {
        let a = aggregate(&SoundModel::default(), &zero, &r, 400.0, &mut rng).unwrap();
        assert!((a.noise_std - 6.0 / 400.0).abs() < 1e-9);
        for (p, d) in a.model.params().iter().zip(SoundModel::default().params()) {
            squares += f64::from(p - d).powi(2);
        }
    }
    let std = (squares / (runs * DIM) as f64).sqrt();
    assert!((std / (6.0 / 400.0) - 1.0).abs() < 0.1, "{std}");
}

#[test]
fn the_reference_device_measures_against_its_own_sound() {
    let mut d = client::Device::new(0.5);
    let calm = [Some(0.2); 8];
    let loud = [Some(1.0); 8];
    // The first play sets the sound: no example yet.
    d.hear(&calm, true);
    assert!(d.examples().is_empty());
    d.hear(&loud, false);
    let x = d.examples()[0];
    assert!(!x.played && x.known == 0xff);
    assert!((x.distance[1] - 0.8).abs() < 1e-6);
    // A skip leaves the sound; a play moves it half way.
    d.hear(&loud, true);
    let y = d.measure(&calm).unwrap();
    assert!((y.distance[1] - 0.4).abs() < 1e-6, "{:?}", y.distance);
    let u = d.update(&SoundModel::default(), &default_plan()).unwrap();
    assert_eq!(u.examples, 2);
    assert!(u.delta.iter().any(|x| *x != 0.0));
    assert!(
        client::Device::new(0.1)
            .update(&SoundModel::default(), &default_plan())
            .is_none()
    );
}

#[test]
fn the_step_does_not_tell_how_many_took_part() {
    // Without noise, one update of 1 over D = 10 moves a parameter by 0.1 whether or
    // not others sent zero updates: the denominator is fixed, not the weight that came.
    let r = rules(0.0);
    let mut one = [0.0; DIM];
    one[1] = 1.0;
    let single = [Contribution::of(&one, 100, &r).unwrap()];
    let zeros = Contribution::of(&[0.0; DIM], 100, &r).unwrap();
    let crowd: Vec<Contribution> = single.iter().copied().chain([zeros; 5]).collect();
    let mut rng = StdRng::seed_from_u64(4);
    let g = SoundModel::default();
    let alone = aggregate(&g, &single, &r, 10.0, &mut rng).unwrap();
    let among = aggregate(&g, &crowd, &r, 10.0, &mut rng).unwrap();
    assert!(
        (alone.model.weights[1] - 1.1).abs() < 1e-6,
        "{:?}",
        alone.model
    );
    assert_eq!(alone.model, among.model);
    assert!(aggregate(&g, &single, &r, 0.0, &mut rng).is_none());
}
