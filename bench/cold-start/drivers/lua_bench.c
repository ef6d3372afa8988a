/* Cold-start corpus: a language runtime. Runs an embedded Lua 5.4 script
 * (tables, strings, closures, metatables, sorting, string patterns) and
 * prints its results. */
#include <stdio.h>
#include <stdlib.h>
#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

void lua_wasi_fatal(void *L, int status) {
    const char *msg = lua_tostring((lua_State *)L, -1);
    fprintf(stderr, "lua: error %d (cannot unwind on wasm32-wasi): %s\n", status, msg ? msg : "?");
    exit(1);
}

static const char script[] =
"local N = tonumber(arg_n) or 60000\n"
"local seed = 12345\n"
"local function rand(m) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % m end\n"
"-- 1. records in tables, sorted by two keys\n"
"local people = {}\n"
"local syl = {'ka','lo','mi','ne','ru','sa','to','vi','ze','qu'}\n"
"for i = 1, N do\n"
"  local name = {}\n"
"  for j = 1, 2 + rand(3) do name[#name + 1] = syl[rand(10) + 1] end\n"
"  people[i] = {id = i, name = table.concat(name), age = 18 + rand(70), score = rand(100000) / 100}\n"
"end\n"
"table.sort(people, function(a, b) if a.age ~= b.age then return a.age < b.age end return a.id > b.id end)\n"
"print('youngest', people[1].id, people[1].name, 'oldest', people[N].id, people[N].name)\n"
"-- 2. grouping with string keys\n"
"local groups, ngroups = {}, 0\n"
"for _, p in ipairs(people) do\n"
"  local g = groups[p.name]\n"
"  if not g then g = {n = 0, sum = 0}; groups[p.name] = g; ngroups = ngroups + 1 end\n"
"  g.n = g.n + 1; g.sum = g.sum + p.score\n"
"end\n"
"local keys = {}\n"
"for k in pairs(groups) do keys[#keys + 1] = k end\n"
"table.sort(keys, function(a, b) return groups[a].n > groups[b].n or (groups[a].n == groups[b].n and a < b) end)\n"
"for i = 1, 5 do local g = groups[keys[i]]; print(string.format('%-10s %5d %12.2f', keys[i], g.n, g.sum)) end\n"
"print('groups', ngroups)\n"
"-- 3. string building and patterns\n"
"local parts = {}\n"
"for i = 1, N // 4 do parts[#parts + 1] = string.format('k%d=%s;', i, people[i].name) end\n"
"local s = table.concat(parts)\n"
"local count, total = 0, 0\n"
"for k, v in s:gmatch('k(%d+)=(%a+);') do count = count + 1; total = total + #v + tonumber(k) % 7 end\n"
"local t, subs = s:gsub('(ka)(%a)', '%2%1')\n"
"print('pairs', count, total, 'subs', subs, #t, t:sub(1, 40))\n"
"-- 4. objects with metatables and closures\n"
"local Vec = {}; Vec.__index = Vec\n"
"function Vec.new(x, y) return setmetatable({x = x, y = y}, Vec) end\n"
"Vec.__add = function(a, b) return Vec.new(a.x + b.x, a.y + b.y) end\n"
"Vec.__mul = function(a, k) return Vec.new(a.x * k, a.y * k) end\n"
"function Vec:len2() return self.x * self.x + self.y * self.y end\n"
"local acc = Vec.new(0, 0)\n"
"for i = 1, N * 3 do acc = acc + Vec.new(rand(100) - 50, rand(100) - 50) * 0.5 end\n"
"print('vec', acc.x, acc.y, acc:len2())\n"
"local function counter() local c = 0; return function(d) c = c + d; return c end end\n"
"local cs = {}\n"
"for i = 1, 100 do cs[i] = counter() end\n"
"local z = 0\n"
"for i = 1, N * 2 do z = cs[i % 100 + 1](i % 13) end\n"
"print('closures', z, cs[1](0), cs[100](0))\n"
"-- 5. integer and float math\n"
"local primes, sieve = 0, {}\n"
"for i = 2, N * 10 do\n"
"  if not sieve[i] then primes = primes + 1; for j = i * i, N * 10, i do sieve[j] = true end end\n"
"end\n"
"local h = 0\n"
"for i = 1, N * 5 do h = (h * 31 + i ~ (i >> 3)) & 0xffffffff end\n"
"print('primes', primes, 'hash', h, string.format('%.6f', math.sin(1) + math.sqrt(2)))\n";

int main(int argc, char **argv) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_pushstring(L, argc > 1 ? argv[1] : "60000");
    lua_setglobal(L, "arg_n");
    if (luaL_loadbuffer(L, script, sizeof script - 1, "=bench") != LUA_OK) {
        fprintf(stderr, "load: %s\n", lua_tostring(L, -1));
        return 1;
    }
    lua_call(L, 0, 0);
    printf("%s done\n", LUA_RELEASE);
    lua_close(L);
    return 0;
}
