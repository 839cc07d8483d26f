// Value formatting as Grafana's units: the y-axis `format` of Ray's graph
// panels (short, s, ms, bytes, percent, percentunit, Bps, ...) and any other
// text, which Grafana shows after the number.

// A number with `decimals` places, or a few significant ones when unset;
// trailing zeros go.
export function fixed(v, decimals) {
  if (!Number.isFinite(v)) return String(v);
  let d = decimals;
  if (d == null) {
    const a = Math.abs(v);
    d = a === 0 || a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : Math.min(6, 1 - Math.floor(Math.log10(a)) + 1);
  }
  let s = v.toFixed(Math.max(0, Math.min(20, d)));
  if (decimals == null && s.includes('.')) s = s.replace(/\.?0+$/, '');
  return s;
}

// Scales by `factor` through `suffixes` (Grafana's scaledUnits).
function scaled(factor, suffixes) {
  return (v, decimals) => {
    let i = 0;
    let x = v;
    while (Math.abs(x) >= factor && i < suffixes.length - 1) {
      x /= factor;
      i++;
    }
    return fixed(x, decimals) + suffixes[i];
  };
}

const SHORT = scaled(1000, ['', ' K', ' Mil', ' Bil', ' Tri', ' Quadr', ' Quint', ' Sext', ' Sept']);
const BYTES = scaled(1024, [' B', ' KiB', ' MiB', ' GiB', ' TiB', ' PiB', ' EiB']);
const DECBYTES = scaled(1000, [' B', ' kB', ' MB', ' GB', ' TB', ' PB', ' EB']);
const BPS = scaled(1000, [' B/s', ' kB/s', ' MB/s', ' GB/s', ' TB/s', ' PB/s']);
const BITPS = scaled(1000, [' b/s', ' kb/s', ' Mb/s', ' Gb/s', ' Tb/s']);

// Grafana's toSeconds: sub-second values in ms, larger ones in min, hour,
// day, week, year.
function seconds(v, decimals) {
  const a = Math.abs(v);
  if (a === 0) return '0 s';
  if (a < 1e-3) return fixed(v * 1e6, decimals) + ' µs';
  if (a < 1) return fixed(v * 1e3, decimals) + ' ms';
  if (a < 60) return fixed(v, decimals) + ' s';
  if (a < 3600) return fixed(v / 60, decimals) + ' min';
  if (a < 86400) return fixed(v / 3600, decimals) + ' hour';
  if (a < 604800) return fixed(v / 86400, decimals) + ' day';
  if (a < 31536000) return fixed(v / 604800, decimals) + ' week';
  return fixed(v / 31536000, decimals) + ' year';
}

function millis(v, decimals) {
  return Math.abs(v) < 1000 ? fixed(v, decimals) + ' ms' : seconds(v / 1000, decimals);
}

const UNITS = {
  '': (v, d) => fixed(v, d),
  none: (v, d) => fixed(v, d),
  short: SHORT,
  s: seconds,
  ms: millis,
  µs: (v, d) => (Math.abs(v) < 1000 ? fixed(v, d) + ' µs' : millis(v / 1000, d)),
  ns: (v, d) => (Math.abs(v) < 1000 ? fixed(v, d) + ' ns' : millis(v / 1e6, d)),
  bytes: BYTES,
  decbytes: DECBYTES,
  Bps: BPS,
  bps: BITPS,
  percent: (v, d) => fixed(v, d) + '%',
  percentunit: (v, d) => fixed(v * 100, d) + '%',
  celsius: (v, d) => fixed(v, d) + '°C',
  reqps: (v, d) => SHORT(v, d) + ' req/s',
  ops: (v, d) => SHORT(v, d) + ' ops/s',
};

// A formatter for a Grafana unit id; an unknown id is shown as a suffix,
// as Grafana's toFixedUnit does.
export function formatter(unit, decimals) {
  const f = UNITS[unit ?? 'short'];
  const d = decimals == null || decimals === '' ? null : Number(decimals);
  if (f) return (v) => (v == null ? '' : f(v, d));
  return (v) => (v == null ? '' : fixed(v, d) + ' ' + unit);
}
