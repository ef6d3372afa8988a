/* Cold-start corpus: a JavaScript engine. Runs an embedded script under
 * QuickJS-ng (objects, classes, closures, strings, regexps, JSON, sorting,
 * typed arrays, BigInt) and prints what the script returns. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "quickjs.h"

static const char script[] =
"const N = 40000;\n"
"let seed = 12345;\n"
"const rand = m => (seed = (seed * 1103515245 + 12345) % 2147483648) % m;\n"
"const syl = ['ka','lo','mi','ne','ru','sa','to','vi','ze','qu'];\n"
"class Person {\n"
"  constructor(id) { this.id = id; this.name = Array.from({length: 2 + rand(3)}, () => syl[rand(10)]).join('');\n"
"    this.age = 18 + rand(70); this.score = rand(100000) / 100; }\n"
"  get label() { return `${this.name}#${this.id}`; }\n"
"}\n"
"const people = Array.from({length: N}, (_, i) => new Person(i));\n"
"people.sort((a, b) => a.age - b.age || b.id - a.id);\n"
"const out = [];\n"
"out.push(`youngest ${people[0].label} oldest ${people[N - 1].label}`);\n"
"const groups = new Map();\n"
"for (const p of people) { const g = groups.get(p.name) ?? {n: 0, sum: 0}; g.n++; g.sum += p.score; groups.set(p.name, g); }\n"
"const top = [...groups].sort((a, b) => b[1].n - a[1].n || (a[0] < b[0] ? -1 : 1)).slice(0, 5);\n"
"out.push(top.map(([k, g]) => `${k}:${g.n}:${g.sum.toFixed(2)}`).join(' '));\n"
"const text = people.slice(0, N / 4).map(p => `k${p.id}=${p.name};`).join('');\n"
"let count = 0, total = 0;\n"
"for (const m of text.matchAll(/k(\\d+)=([a-z]+);/g)) { count++; total += m[2].length + Number(m[1]) % 7; }\n"
"const swapped = text.replace(/(ka)([a-z])/g, '$2$1');\n"
"out.push(`pairs ${count} ${total} ${swapped.length} ${swapped.slice(0, 40)}`);\n"
"const json = JSON.stringify(people.filter(p => p.id % 97 === 0).map(p => ({id: p.id, n: p.name.toUpperCase()})));\n"
"out.push(`json ${json.length} ${JSON.parse(json).reduce((s, o) => s + o.id, 0)}`);\n"
"const sieve = new Uint8Array(N * 10); let primes = 0;\n"
"for (let i = 2; i < sieve.length; i++) if (!sieve[i]) { primes++; for (let j = i * i; j < sieve.length; j += i) sieve[j] = 1; }\n"
"let f = 1n; for (let i = 1n; i <= 200n; i++) f *= i;\n"
"const mk = () => { let c = 0; return d => (c += d); };\n"
"const cs = Array.from({length: 100}, mk); let z = 0;\n"
"for (let i = 0; i < N * 2; i++) z = cs[i % 100](i % 13);\n"
"out.push(`primes ${primes} fact200 digits ${f.toString().length} closures ${z} ${Math.sin(1).toFixed(6)}`);\n"
"out.join('\\n');\n";

int main(void) {
    JSRuntime *rt = JS_NewRuntime();
    JSContext *ctx = JS_NewContext(rt);
    JSValue v = JS_Eval(ctx, script, sizeof script - 1, "<bench>", JS_EVAL_TYPE_GLOBAL);
    if (JS_IsException(v)) {
        JSValue e = JS_GetException(ctx);
        const char *s = JS_ToCString(ctx, e);
        fprintf(stderr, "exception: %s\n", s ? s : "?");
        return 1;
    }
    const char *s = JS_ToCString(ctx, v);
    printf("%s\nquickjs-ng %s done\n", s, JS_GetVersion());
    JS_FreeCString(ctx, s);
    JS_FreeValue(ctx, v);
    JS_FreeContext(ctx);
    JS_FreeRuntime(rt);
    return 0;
}
