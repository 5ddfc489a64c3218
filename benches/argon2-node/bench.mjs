// @node-rs/argon2 at Roster's default cost, on the calling thread: per-hash times of
// HASHES hashes in ROUNDS rounds (argv[2], argv[3]), printed as benches/argon2.rs does.
import { hashSync } from '@node-rs/argon2';

const hashes = Number(process.argv[2] ?? 40);
const rounds = Number(process.argv[3] ?? 3);
const options = { memoryCost: 19456, timeCost: 2, parallelism: 1, algorithm: 2 };
for (let round = 0; round < rounds; round++) {
  const ms = [];
  for (let i = 0; i < hashes; i++) {
    const t = process.hrtime.bigint();
    hashSync('correct horse battery staple', options);
    ms.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  ms.sort((a, b) => a - b);
  const at = (q) => ms[Math.floor(ms.length * q)].toFixed(2);
  console.log(`node-rs round ${round}: median ${at(0.5)} ms, min ${ms[0].toFixed(2)}, max ${ms[ms.length - 1].toFixed(2)}, p90 ${at(0.9)} (${hashes} hashes, m=19456 t=2 p=1)`);
}
