// Renders a PlanReport as JSON, or as one self-contained HTML page that draws the
// graph (layered layout computed here; the page's script only pans, zooms and shows details).
#include "plan_render.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "plan/partitioner.h"

namespace kiln::cli {

std::string FormatBytes(int64_t b) {
  char buf[64];
  if (b < 1024) {
    std::snprintf(buf, sizeof(buf), "%lld B", static_cast<long long>(b));
  } else if (b < 1024 * 1024) {
    std::snprintf(buf, sizeof(buf), "%.1f KiB", static_cast<double>(b) / 1024.0);
  } else {
    std::snprintf(buf, sizeof(buf), "%.2f MiB", static_cast<double>(b) / (1024.0 * 1024.0));
  }
  return buf;
}

std::string ValueList(const std::vector<PlanValueInfo>& vs) {
  std::string s;
  for (const auto& v : vs) {
    if (v.name.empty()) continue;
    s += (s.empty() ? "" : ", ") + v.name + " " + v.type;
  }
  return s.empty() ? "-" : s;
}

namespace {

nlohmann::ordered_json ValuesJson(const std::vector<PlanValueInfo>& vs) {
  auto a = nlohmann::ordered_json::array();
  for (const auto& v : vs) {
    if (v.name.empty()) {
      a.push_back(nullptr);  // omitted optional input: keeps input positions
      continue;
    }
    a.push_back({{"name", v.name}, {"type", v.type}, {"constant", v.constant}});
  }
  return a;
}

}  // namespace

std::string RenderPlanJson(const PlanReport& r) {
  using J = nlohmann::ordered_json;
  J j;
  j["model"] = r.model;
  j["summary"] = r.SummaryLine();
  j["model_type"] = r.model_type;
  j["units"] = r.units;
  j["threads"] = r.threads;
  j["backends"] = J::array();
  for (const auto& [name, unit] : r.backends)
    j["backends"].push_back({{"name", name}, {"unit", unit}});
  j["notes"] = r.notes;
  j["inputs"] = ValuesJson(r.inputs);
  j["outputs"] = ValuesJson(r.outputs);
  J per = J::object();
  for (const auto& [name, n] : r.NodesPerBackend()) per[name] = n;
  j["counts"] = {{"nodes", r.nodes.size()},
                 {"placed", r.nodes.size() - r.folded_count()},
                 {"folded", r.folded_count()},
                 {"partitions", r.partitions.size()},
                 {"nodes_per_backend", per}};
  j["memory"] = {{"arena_bytes", r.arena_bytes},
                 {"unshared_bytes", r.unshared_bytes},
                 {"buffers", r.arena_buffers}};
  j["partitions"] = J::array();
  for (const auto& p : r.partitions) {
    j["partitions"].push_back({{"index", p.index},
                               {"backend", p.backend},
                               {"unit", p.unit},
                               {"compiled", p.compiled},
                               {"node_count", p.nodes.size()},
                               {"nodes", p.nodes},
                               {"cost_us", p.cost_us},
                               {"border_cost_us", p.border_cost_us},
                               {"inputs", ValuesJson(p.inputs)},
                               {"outputs", ValuesJson(p.outputs)},
                               {"border_conversions", p.border_conversions},
                               {"weight_bytes", p.weight_bytes},
                               {"workspace_bytes", p.workspace_bytes}});
  }
  j["nodes"] = J::array();
  for (const auto& n : r.nodes) {
    J node = {{"id", n.id},
              {"name", n.name},
              {"op_type", n.op_type},
              {"status", n.folded ? "folded" : "placed"}};
    if (!n.folded) {
      node["partition"] = n.partition;
      node["backend"] = n.backend;
      node["unit"] = n.unit;
      node["stated"] = n.stated;
      node["actual"] = n.actual;
      node["precision"] = n.precision;
      node["reason"] = n.reason;
      node["cost_us"] = n.cost_us;
    }
    node["inputs"] = ValuesJson(n.inputs);
    node["outputs"] = ValuesJson(n.outputs);
    j["nodes"].push_back(std::move(node));
  }
  j["folded"] = J::array();
  for (const auto& n : r.nodes) {
    if (n.folded) j["folded"].push_back(n.id);
  }
  j["edges"] = J::array();
  for (const auto& e : r.edges) j["edges"].push_back({e.from, e.to, e.value});
  return j.dump(1, ' ', true) + "\n";
}

std::string BackendColor(const PlanReport& r, const std::string& backend, bool light) {
  if (backend.empty()) return light ? "#f1f1f1" : "#9e9e9e";  // folded
  if (backend == "xnnpack") return light ? "#d3e5f8" : "#1f6fb5";
  if (backend == "ref") return light ? "#fde2c2" : "#d9730d";
  static const char* const kStrong[] = {"#2e7d32", "#7b1fa2", "#00838f", "#6d4c41", "#c2185b"};
  static const char* const kLight[] = {"#d7eed8", "#ead8f3", "#cdeff2", "#eadfda", "#f8d7e5"};
  size_t i = 0;
  while (i < r.backends.size() && r.backends[i].first != backend) ++i;
  return light ? kLight[i % 5] : kStrong[i % 5];
}

// ---- HTML: one self-contained page; the layout is computed here, the page only pans/zooms ----

namespace {

constexpr double kNodeW = 172, kNodeH = 50, kPillH = 26, kPitchX = 196, kPitchY = 84;
constexpr double kMargin = 40;

std::string Esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&':
        o += "&amp;";
        break;
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '"':
        o += "&quot;";
        break;
      case '\'':
        o += "&#39;";
        break;
      default:
        o += c;
    }
  }
  return o;
}

// At most `n` bytes, cut at a UTF-8 character start, with an ellipsis when cut.
std::string Trunc(const std::string& s, size_t n) {
  if (s.size() <= n) return s;
  size_t cut = n - 1;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut) + "\xE2\x80\xA6";
}

std::string Num(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", x);
  return buf;
}

// A drawn box: a node, a graph input or a graph output.
struct Item {
  int node = -1, input = -1, output = -1;
  bool hidden = false;  // a folded leaf (Constant): counted on its consumers, not drawn
  int consts = 0;       // hidden producers feeding this item
  std::vector<int> preds, succs;
  int layer = 0;
  double x = 0, y = 0;
};

// Pool-adjacent-violators: positions as close as possible (least squares) to `want`, in the
// given order, at least `pitch` apart.
std::vector<double> PlaceRow(const std::vector<double>& want, double pitch) {
  struct Block {
    double sum;
    int count;
  };
  std::vector<Block> blocks;
  for (size_t i = 0; i < want.size(); ++i) {
    blocks.push_back({want[i] - static_cast<double>(i) * pitch, 1});
    while (blocks.size() > 1) {
      Block& b = blocks.back();
      Block& a = blocks[blocks.size() - 2];
      if (a.sum / a.count <= b.sum / b.count) break;
      a.sum += b.sum;
      a.count += b.count;
      blocks.pop_back();
    }
  }
  std::vector<double> x;
  for (const Block& b : blocks) {
    for (int k = 0; k < b.count; ++k) x.push_back(b.sum / b.count);
  }
  for (size_t i = 0; i < x.size(); ++i) x[i] += static_cast<double>(i) * pitch;
  return x;
}

// Longest-path layering in topological order, sources pulled down next to their first
// consumer, then barycentre sweeps to order and place each layer.
std::vector<Item> Layout(const PlanReport& r, double& width, double& height) {
  std::vector<Item> items(r.nodes.size());
  std::map<std::string, int> by_value;  // value name -> item producing it
  for (size_t i = 0; i < r.nodes.size(); ++i) {
    items[i].node = static_cast<int>(i);
    const PlanNodeInfo& n = r.nodes[i];
    items[i].hidden =
        n.folded && std::all_of(n.inputs.begin(), n.inputs.end(),
                                [](const PlanValueInfo& v) { return v.name.empty(); });
    for (const auto& o : r.nodes[i].outputs) by_value[o.name] = static_cast<int>(i);
  }
  auto link = [&](int a, int b) {
    if (items[a].hidden && !items[b].hidden) ++items[b].consts;
    if (items[a].hidden || items[b].hidden) return;
    if (std::find(items[a].succs.begin(), items[a].succs.end(), b) != items[a].succs.end()) return;
    items[a].succs.push_back(b);
    items[b].preds.push_back(a);
  };
  for (size_t i = 0; i < r.inputs.size(); ++i) {
    Item it;
    it.input = static_cast<int>(i);
    items.push_back(it);
    by_value[r.inputs[i].name] = static_cast<int>(items.size()) - 1;
  }
  for (const auto& e : r.edges) link(static_cast<int>(e.from), static_cast<int>(e.to));
  for (size_t i = 0; i < r.nodes.size(); ++i) {
    for (const auto& in : r.nodes[i].inputs) {
      auto it = by_value.find(in.name);
      if (it != by_value.end() && items[it->second].input >= 0)
        link(it->second, static_cast<int>(i));
    }
  }
  for (size_t i = 0; i < r.outputs.size(); ++i) {
    Item it;
    it.output = static_cast<int>(i);
    items.push_back(it);
    auto p = by_value.find(r.outputs[i].name);
    if (p != by_value.end()) link(p->second, static_cast<int>(items.size()) - 1);
  }
  const int n = static_cast<int>(items.size());
  // Kahn's algorithm; anything left over (a cycle, which a valid graph has not) goes last.
  std::vector<int> indeg(n), order;
  for (int i = 0; i < n; ++i) indeg[i] = static_cast<int>(items[i].preds.size());
  std::vector<int> ready;
  for (int i = n - 1; i >= 0; --i) {
    if (indeg[i] == 0) ready.push_back(i);
  }
  std::vector<bool> done(n, false);
  while (!ready.empty()) {
    const int i = ready.back();
    ready.pop_back();
    order.push_back(i);
    done[i] = true;
    for (auto s = items[i].succs.rbegin(); s != items[i].succs.rend(); ++s) {
      if (--indeg[*s] == 0) ready.push_back(*s);
    }
  }
  for (int i = 0; i < n; ++i) {
    if (!done[i]) order.push_back(i);
  }
  std::vector<int> rank(n);
  for (int k = 0; k < n; ++k) rank[order[k]] = k;
  for (int i : order) {
    for (int p : items[i].preds) {
      if (rank[p] < rank[i]) items[i].layer = std::max(items[i].layer, items[p].layer + 1);
    }
  }
  for (auto k = order.rbegin(); k != order.rend(); ++k) {
    Item& it = items[*k];
    if (!it.preds.empty() || it.succs.empty()) continue;
    int lowest = 1 << 30;
    for (int s : it.succs) lowest = std::min(lowest, items[s].layer);
    it.layer = std::max(0, lowest - 1);
  }
  int layers = 0;
  for (const Item& it : items) layers = std::max(layers, it.layer + 1);
  std::vector<std::vector<int>> rows(layers);
  for (int i : order) {
    if (!items[i].hidden) rows[items[i].layer].push_back(i);
  }
  for (auto& row : rows) {
    for (size_t k = 0; k < row.size(); ++k) items[row[k]].x = static_cast<double>(k) * kPitchX;
  }
  for (int sweep = 0; sweep < 16; ++sweep) {
    const bool down = sweep % 2 == 0;
    for (int l = 0; l < layers; ++l) {
      auto& row = rows[down ? l : layers - 1 - l];
      std::vector<std::pair<double, int>> want;
      for (int i : row) {
        const auto& nb = down ? items[i].preds : items[i].succs;
        double sum = 0;
        for (int j : nb) sum += items[j].x;
        want.emplace_back(nb.empty() ? items[i].x : sum / static_cast<double>(nb.size()), i);
      }
      std::stable_sort(want.begin(), want.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      std::vector<double> w;
      for (size_t k = 0; k < want.size(); ++k) {
        row[k] = want[k].second;
        w.push_back(want[k].first);
      }
      const std::vector<double> x = PlaceRow(w, kPitchX);
      for (size_t k = 0; k < row.size(); ++k) items[row[k]].x = x[k];
    }
  }
  double lo = 1e300, hi = -1e300;
  for (const Item& it : items) {
    if (it.hidden) continue;
    lo = std::min(lo, it.x);
    hi = std::max(hi, it.x);
  }
  if (items.empty()) lo = hi = 0;
  for (Item& it : items) {
    it.x = std::round(it.x - lo + kMargin);
    it.y = kMargin + 20 + it.layer * kPitchY;
  }
  width = hi - lo + kNodeW + 2 * kMargin;
  height = kMargin * 2 + 20 + layers * kPitchY;
  return items;
}

// Partition band colours (translucent behind the nodes); neighbours in execution order differ.
// Kept away from the backend colours (blue, orange) so that a band never reads as a backend.
const char* const kBand[] = {"#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#e6ab02",
                             "#8c564b", "#17becf", "#9467bd", "#bcbd22", "#666666"};

std::string EdgePath(const Item& a, const Item& b) {
  const double x1 = a.x + kNodeW / 2, y1 = a.y + (a.node >= 0 ? kNodeH : kPillH);
  const double x2 = b.x + kNodeW / 2, y2 = b.y - 2;
  const double dy = y2 - y1;
  const int span = b.layer - a.layer;
  if (span <= 1) {
    return "M" + Num(x1) + "," + Num(y1) + " C" + Num(x1) + "," + Num(y1 + dy * 0.45) + " " +
           Num(x2) + "," + Num(y2 - dy * 0.45) + " " + Num(x2) + "," + Num(y2);
  }
  // A longer edge leaves through the gap below its source, runs down a lane beside the boxes
  // between (not over them, in a straight column), and enters through the gap above its target.
  const double g = kPitchY - kNodeH - 4;
  const double spread = (span % 4) * 5.0;
  const double lane = x2 >= x1 ? std::max(x1, x2) + kNodeW / 2 + 10 + spread
                               : std::min(x1, x2) - kNodeW / 2 - 10 - spread;
  return "M" + Num(x1) + "," + Num(y1) + " C" + Num(x1) + "," + Num(y1 + g * 0.8) + " " +
         Num(lane) + "," + Num(y1 + g * 0.2) + " " + Num(lane) + "," + Num(y1 + g) + " L" +
         Num(lane) + "," + Num(y2 - g) + " C" + Num(lane) + "," + Num(y2 - g * 0.2) + " " +
         Num(x2) + "," + Num(y2 - g * 0.8) + " " + Num(x2) + "," + Num(y2);
}

}  // namespace

namespace {

const char kPageCss[] = R"CSS(
*{box-sizing:border-box}html,body{margin:0;height:100%}
body{font:13px/1.35 system-ui,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1d2327;
 display:flex;flex-direction:column}
header{background:#263238;color:#eceff1;padding:8px 14px 7px}
header h1{font-size:16px;margin:0 0 2px;font-weight:600}
header .sum{font-size:12.5px;color:#cfd8dc}
.legend{display:flex;flex-wrap:wrap;gap:5px 18px;margin-top:6px;font-size:12px;align-items:center}
.sw{display:inline-block;width:24px;height:14px;border-radius:3px;vertical-align:-3px;
 margin-right:5px;border:2px solid}
.band{display:inline-block;width:24px;height:14px;border-radius:7px;vertical-align:-3px;
 margin-right:5px;background:linear-gradient(90deg,#1b9e7766,#7570b366,#e7298a66)}
.ln{display:inline-block;width:26px;vertical-align:3px;margin-right:5px;
 border-top:2px solid #90a4ae}
#main{flex:1;display:flex;min-height:0}
#view{flex:1;position:relative;background:#f6f8f9;overflow:hidden;cursor:grab}
#view.drag{cursor:grabbing}
#graph{width:100%;height:100%;display:block;user-select:none}
#side{width:460px;overflow:auto;border-left:1px solid #cfd8dc;background:#fff;padding:6px 12px 12px}
#side h2{font-size:12px;margin:12px 0 5px;text-transform:uppercase;letter-spacing:.05em;
 color:#455a64}
table{border-collapse:collapse;width:100%;font-size:12px}#parts{font-size:11.5px}
td,th{padding:2px 4px;white-space:nowrap;border-bottom:1px solid #eceff1;text-align:left;
 vertical-align:top}
th{color:#546e7a;font-weight:600;position:sticky;top:0;background:#fff}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
#parts tbody tr{cursor:pointer}#parts tbody tr:hover{background:#eef3f7}#parts tr.on{
 background:#e3f2fd}
.tools{position:absolute;top:8px;left:8px;display:flex;gap:6px;z-index:2;align-items:center}
.tools button,.tools input{font:12px system-ui,sans-serif;padding:3px 8px;border:1px solid #b0bec5;
 border-radius:4px;background:#fff}
.hint{font-size:11px;color:#78909c;background:#ffffffd0;padding:2px 6px;border-radius:4px}
#tip{position:fixed;pointer-events:none;background:#263238f2;color:#fff;font-size:12px;
 padding:6px 8px;border-radius:5px;max-width:460px;display:none;z-index:5}
#tip b{color:#ffe082}
svg text{font-family:system-ui,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
.op{font-size:12.5px;font-weight:700;fill:#1d2327}.nm{font-size:10px;fill:#37474f}
.pr{font-size:10px;fill:#546e7a}.pr.raised{fill:#6a1b9a;font-weight:700}
.u{font-size:9px;fill:#607d8b;font-weight:600}.fb{font-size:11px;font-weight:800;fill:#fff}
.mark{display:inline-block;width:14px;height:14px;border-radius:7px;background:#c62828;color:#fff;
 font-weight:800;font-size:11px;text-align:center;line-height:14px;margin-right:5px}
.n{cursor:pointer}.n.fold text{fill:#757575}
.e{fill:none;stroke:#90a4ae;stroke-width:1.2}.e.x{stroke:#c62828;stroke-dasharray:5 3;
 stroke-width:1.6}
.e.f{stroke:#bdbdbd;stroke-dasharray:2 3}.e.hl{stroke:#0d47a1;stroke-width:3;stroke-dasharray:none}
.n.sel .bx{stroke:#0d47a1;stroke-width:3.5}.n.nb .bx{stroke-width:2.6}
svg.dim .n:not(.on),svg.dim .pill{opacity:.22}
.plabel{font-size:11.5px;font-weight:700;paint-order:stroke;stroke:#fff;stroke-width:4px}
.pill text{font-size:10.5px;fill:#263238;font-weight:600}
#details td,#summary td{white-space:normal}
#mini{position:absolute;right:10px;top:44px;width:90px;height:300px;background:#fff;
 border:1px solid #b0bec5;border-radius:4px;box-shadow:0 1px 4px #0002;cursor:pointer}
#mview{fill:#0d47a11a;stroke:#0d47a1;stroke-width:1.5}
#details td.k{color:#607d8b;white-space:nowrap;width:90px}.reason{color:#b71c1c}
.muted{color:#90a4ae}.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:11.5px}
)CSS";

const char kPageJs[] = R"JS(
(function(){
const D=JSON.parse(document.getElementById('plan-data').textContent);
const L=JSON.parse(document.getElementById('plan-layout').textContent);
const svg=document.getElementById('graph'),view=document.getElementById('view');
const tip=document.getElementById('tip'),det=document.getElementById('details');
let vb={x:0,y:0,w:L.w,h:L.h};
const mini=document.getElementById('mini'),mv=document.getElementById('mview');
let scale=1;
function apply(){scale=size()[0]/vb.w;svg.setAttribute('viewBox',vb.x+' '+vb.y+' '+vb.w+' '+vb.h);
 mv.setAttribute('x',vb.x);mv.setAttribute('y',vb.y);mv.setAttribute('width',vb.w);
 mv.setAttribute('height',vb.h);}
function sizeMini(){const mw=L.h>L.w?90:200;const avail=view.clientHeight-56;
 mini.style.display=L.w<=view.clientWidth-120&&L.h<=view.clientHeight-40?'none':'block';
 mini.style.width=mw+'px';mini.style.height=Math.max(60,Math.min(avail,mw*L.h/L.w))+'px';}
function miniGo(e){const r=mini.getBoundingClientRect();
 vb.x=(e.clientX-r.left)/r.width*L.w-vb.w/2;vb.y=(e.clientY-r.top)/r.height*L.h-vb.h/2;apply();}
let mdrag=false;mini.addEventListener('mousedown',e=>{mdrag=true;miniGo(e);e.stopPropagation();});
window.addEventListener('mousemove',e=>{if(mdrag)miniGo(e);});
window.addEventListener('mouseup',()=>{mdrag=false;});
function size(){const r=svg.getBoundingClientRect();return [Math.max(r.width,1),Math.max(r.height,
 1)];}
function show(x,y,w,h,max){const [cw,ch]=size();const s=Math.min(cw/w,ch/h,max);
 vb.w=cw/s;vb.h=ch/s;vb.x=x+w/2-vb.w/2;vb.y=y+h/2-vb.h/2;apply();}
function fitWidth(){const [cw,ch]=size();const s=Math.min(1,Math.max(cw/L.w,0.55));
 vb.w=cw/s;vb.h=ch/s;vb.x=Math.min(0,(L.w-vb.w)/2);vb.y=0;apply();}
function zoom(k,fx,fy){const px=vb.x+fx*vb.w,py=vb.y+fy*vb.h;
 const nw=Math.min(Math.max(vb.w*k,80),Math.max(L.w,L.h)*3);const kk=nw/vb.w;
 vb.w=nw;vb.h*=kk;vb.x=px-fx*vb.w;vb.y=py-fy*vb.h;apply();}
view.addEventListener('wheel',e=>{e.preventDefault();const r=svg.getBoundingClientRect();
 const [cw,ch]=size();
 if(e.ctrlKey||e.metaKey||e.altKey){zoom(Math.exp(e.deltaY*0.002),(e.clientX-r.left)/r.width,
 (e.clientY-r.top)/r.height);return;}
 const s=vb.w/cw;const dx=e.shiftKey?e.deltaY:e.deltaX,dy=e.shiftKey?0:e.deltaY;
 vb.x+=dx*s;vb.y+=dy*s;apply();},{passive:false});
let drag=null,moved=false;
view.addEventListener('mousedown',e=>{
 if(e.target.closest('.tools')||e.target.closest('#mini'))return;
 drag={x:e.clientX,y:e.clientY,vx:vb.x,vy:vb.y};moved=false;view.classList.add('drag');});
window.addEventListener('mousemove',e=>{if(!drag)return;const [cw]=size();const s=vb.w/cw;
 const dx=e.clientX-drag.x,dy=e.clientY-drag.y;if(Math.abs(dx)+Math.abs(dy)>3)moved=true;
 vb.x=drag.vx-dx*s;vb.y=drag.vy-dy*s;apply();});
window.addEventListener('mouseup',()=>{drag=null;view.classList.remove('drag');});
function esc(s){return String(s).replace(/[&<>"]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;',
 '"':'&quot;'}[c]));}
function vals(vs){return vs.filter(v=>v).map(v=>'<div class="mono">'+esc(v.name)+
 ' <span class="muted">'+
 esc(v.type)+(v.constant?' const':'')+'</span></div>').join('')||'<span class="muted">none</span>';}
function info(i){const n=D.nodes[i];if(!n)return '';let r=[['op',esc(n.op_type)],['name',
 '<span class="mono">'+esc(n.name)+'</span>']];
 if(n.status==='folded'){r.push(['placed','folded at plan time (outputs are constants)']);}
 else{const p=D.partitions[n.partition];
  r.push(['partition','P'+n.partition+' \u00b7 '+esc(p.backend)+' ('+esc(p.unit)+'), '+p.node_count+
 ' nodes']);
  r.push(['backend',esc(n.backend)+' on '+esc(n.unit)]);
  r.push(['precision',esc(n.precision)+(n.stated!==n.actual?' <span class="muted">(stated '+
 esc(n.stated)+', actual '+esc(n.actual)+')</span>':'')]);
  r.push(['est. cost',n.cost_us.toFixed(2)+' \u00b5s']);
  r.push(['fell back',n.reason?'<span class="reason">'+esc(n.reason)+
 '</span>':'<span class="muted">no: first choice</span>']);}
 r.push(['inputs',vals(n.inputs)]);r.push(['outputs',vals(n.outputs)]);
 return '<table>'+r.map(x=>'<tr><td class="k">'+x[0]+'</td><td>'+x[1]+'</td></tr>').join('')+
 '</table>';}
function partInfo(i){const p=D.partitions[i];const kb=b=>b<1024?b+' B':(b/1024).toFixed(1)+' KiB';
 const r=[['partition','P'+i+' \u00b7 '+esc(p.backend)+' ('+esc(p.unit)+')'],['nodes',
 p.node_count+(p.compiled?' compiled':' run by the executor')],
  ['est. cost',p.cost_us.toFixed(1)+' \u00b5s (borders '+p.border_cost_us.toFixed(1)+' \u00b5s)'],
  ['border in',vals(p.inputs)],['border out',vals(p.outputs)],
  ['conversions',p.border_conversions.map(c=>'<div class="mono">'+esc(c)+
 '</div>').join('')||'<span class="muted">none</span>']];
 if(p.compiled)r.push(['weights',kb(p.weight_bytes)],['workspace',kb(p.workspace_bytes)]);
 return '<table>'+r.map(x=>'<tr><td class="k">'+x[0]+'</td><td>'+x[1]+'</td></tr>').join('')+
 '</table>';}
function tipText(i){const n=D.nodes[i];if(!n)return '';
 let s='<b>'+esc(n.op_type)+'</b> '+esc(n.name)+'<br>';
 if(n.status==='folded')return s+'folded at plan time';
 s+='P'+n.partition+' \u00b7 '+esc(n.backend)+'/'+esc(n.unit)+' \u00b7 '+esc(n.precision)+'<br>';
 const o=n.outputs.filter(v=>v).map(v=>esc(v.type)).join(', ');if(o)s+='\u2192 '+o+'<br>';
 if(n.reason)s+='<span style="color:#ffab91">fell back: '+esc(n.reason)+'</span>';return s;}
svg.addEventListener('mousemove',e=>{const g=e.target.closest('.n');if(!g||drag){
 tip.style.display='none';return;}
 tip.innerHTML=tipText(+g.dataset.i);tip.style.display='block';
 const w=tip.offsetWidth,h=tip.offsetHeight;let x=e.clientX+16,y=e.clientY+14;
 if(x+w>innerWidth-4)x=e.clientX-w-12;if(y+h>innerHeight-4)y=e.clientY-h-10;
 tip.style.left=x+'px';tip.style.top=y+'px';});
svg.addEventListener('mouseleave',()=>{tip.style.display='none';});
function clearSel(){svg.querySelectorAll('.sel,.nb,.hl').forEach(x=>x.classList.remove('sel','nb',
 'hl'));}
function select(i,center){clearSel();const g=document.getElementById('n'+i);if(!g)return;
 g.classList.add('sel');
 svg.querySelectorAll('.e[data-a="'+i+'"],.e[data-b="'+i+'"]').forEach(p=>{p.classList.add('hl');
  const o=p.dataset.a==i?p.dataset.b:p.dataset.a;const q=document.getElementById('n'+o);
 if(q)q.classList.add('nb');});
 det.innerHTML=info(i);det.classList.remove('muted');
 if(center){const p=L.pos[i];show(p[0]-300,p[1]-260,600+L.nw,520+L.nh,1.2);}}
svg.addEventListener('click',e=>{if(moved)return;const g=e.target.closest('.n');
 if(g)select(+g.dataset.i,false);});
let focus=-1;
function focusPart(p){
 document.querySelectorAll('#parts tr.on').forEach(r=>r.classList.remove('on'));
 svg.querySelectorAll('.n.on').forEach(x=>x.classList.remove('on'));
 if(p===focus||p<0){focus=-1;svg.classList.remove('dim');return;}
 focus=p;svg.classList.add('dim');document.getElementById('p'+p).classList.add('on');
 clearSel();det.classList.remove('muted');det.innerHTML=partInfo(p);
 let x0=1e9,y0=1e9,x1=-1e9,y1=-1e9;
 for(const i of D.partitions[p].nodes){const g=document.getElementById('n'+i);
 if(g)g.classList.add('on');
  const q=L.pos[i];x0=Math.min(x0,q[0]);y0=Math.min(y0,q[1]);x1=Math.max(x1,q[0]+L.nw);
 y1=Math.max(y1,q[1]+L.nh);}
 show(x0-60,y0-60,x1-x0+120,y1-y0+120,1.2);}
document.querySelectorAll('#parts tbody tr').forEach(r=>r.addEventListener('click',
 ()=>focusPart(+r.dataset.p)));
let hits=[],hit=0;const q=document.getElementById('q');
q.addEventListener('keydown',e=>{if(e.key!=='Enter')return;const t=q.value.toLowerCase();
 if(!t)return;if(q.dataset.t!==t){q.dataset.t=t;hit=0;
 hits=D.nodes.filter(n=>n.name.toLowerCase().includes(t)||
 n.op_type.toLowerCase().includes(t)).map(n=>n.id).filter(i=>document.getElementById('n'+i));}
 if(!hits.length){q.style.background='#ffcdd2';return;}q.style.background='';
 select(hits[hit%hits.length],true);hit++;});
document.getElementById('bfit').onclick=fitWidth;
document.getElementById('ball').onclick=()=>show(0,0,L.w,L.h,1);
document.getElementById('bin').onclick=()=>zoom(1/1.3,.5,.5);
document.getElementById('bout').onclick=()=>zoom(1.3,.5,.5);
window.addEventListener('resize',()=>{sizeMini();const [cw,ch]=size();const cx=vb.x+vb.w/2;
 vb.w=cw/scale;vb.h=ch/scale;vb.x=cx-vb.w/2;apply();});
sizeMini();fitWidth();
// Links: #node=NAME selects a node, #partition=N focuses a partition, #all shows everything.
const h=decodeURIComponent(location.hash.slice(1));
if(h.startsWith('node=')){const n=D.nodes.find(x=>x.name===h.slice(5));if(n)select(n.id,true);}
if(h==='all')show(0,0,L.w,L.h,1);
if(h.startsWith('partition=')){const p=+h.slice(10);if(D.partitions[p])focusPart(p);}
})();
)JS";

// JSON for a <script> element: no "</" may end it early.
std::string ScriptSafe(std::string s) {
  for (size_t i = 0; (i = s.find("</", i)) != std::string::npos; i += 3) s.replace(i, 2, "<\\/");
  return s;
}

}  // namespace

std::string RenderPlanHtml(const PlanReport& r) {
  double gw = 0, gh = 0;
  const std::vector<Item> items = Layout(r, gw, gh);
  const size_t nn = r.nodes.size();
  auto is_node = [&](int i) { return items[i].node >= 0; };
  std::string svg;
  svg +=
      "<svg id=\"graph\" viewBox=\"0 0 " + Num(gw) + " " + Num(gw * 0.7) +
      "\" preserveAspectRatio=\"xMidYMin meet\">\n<defs><marker id=\"ar\" viewBox=\"0 0 8 8\" "
      "refX=\"7\" refY=\"4\" markerWidth=\"8\" markerHeight=\"8\" markerUnits=\"userSpaceOnUse\" "
      "orient=\"auto\"><path "
      "d=\"M0,0 L8,4 L0,8 z\" fill=\"#78909c\"/></marker></defs><g id=\"gc\">\n";
  // Partition bands: a translucent ribbon over each partition's boxes and inner edges.
  for (const auto& p : r.partitions) {
    const char* c = kBand[p.index % 10];
    svg += std::string("<g class=\"bandg\" opacity=\"0.2\" fill=\"") + c + "\" stroke=\"" + c +
           "\" data-p=\"" + std::to_string(p.index) + "\">";
    for (uint32_t id : p.nodes) {
      const Item& it = items[id];
      svg += "<rect x=\"" + Num(it.x - 9) + "\" y=\"" + Num(it.y - 9) + "\" width=\"" +
             Num(kNodeW + 18) + "\" height=\"" + Num(kNodeH + 18) +
             "\" rx=\"13\" stroke=\"none\"/>";
    }
    for (uint32_t id : p.nodes) {
      for (int s : items[id].succs) {
        if (is_node(s) && !r.nodes[s].folded && r.nodes[s].partition == p.index &&
            items[s].layer == items[id].layer + 1) {
          svg += "<path d=\"" + EdgePath(items[id], items[s]) +
                 "\" fill=\"none\" stroke-width=\"30\" stroke-linecap=\"round\"/>";
        }
      }
    }
    svg += "</g>\n";
  }
  for (size_t a = 0; a < items.size(); ++a) {
    for (int b : items[a].succs) {
      std::string cls = "e";
      if (is_node(static_cast<int>(a)) && is_node(b)) {
        const PlanNodeInfo& na = r.nodes[a];
        const PlanNodeInfo& nb = r.nodes[b];
        if (na.folded) {
          cls += " f";
        } else if (!nb.folded && na.partition != nb.partition) {
          cls += " x";
        }
      }
      svg += "<path class=\"" + cls + "\" data-a=\"" + std::to_string(a) + "\" data-b=\"" +
             std::to_string(b) + "\" d=\"" + EdgePath(items[a], items[b]) +
             "\" marker-end=\"url(#ar)\"/>\n";
    }
  }
  for (const auto& p : r.partitions) {
    if (p.nodes.empty()) continue;
    const Item& it = items[p.nodes.front()];
    char label[160];
    std::snprintf(label, sizeof(label), "P%d \xC2\xB7 %s/%s \xC2\xB7 %zu node%s", p.index,
                  p.backend.c_str(), p.unit.c_str(), p.nodes.size(),
                  p.nodes.size() == 1 ? "" : "s");
    // Short on the drawing (the edge into the box passes its top centre), in full on hover.
    svg += "<text class=\"plabel\" x=\"" + Num(it.x - 6) + "\" y=\"" + Num(it.y - 13) +
           "\" fill=\"" + kBand[p.index % 10] + "\">P" + std::to_string(p.index) + " \xC2\xB7 " +
           Esc(p.backend) + "<title>" + Esc(label) + "</title></text>\n";
  }
  for (size_t i = 0; i < nn; ++i) {
    const PlanNodeInfo& n = r.nodes[i];
    const Item& it = items[i];
    const std::string strong = BackendColor(r, n.backend, false);
    const std::string light = BackendColor(r, n.backend, true);
    const std::string precision =
        n.stated != n.actual ? n.stated + "\xE2\x86\x92" + n.actual : n.precision;  // f16->f32
    std::string line3 =
        n.folded ? "folded at plan time" : precision + " \xC2\xB7 " + n.backend + "/" + n.unit;
    const bool raised = !n.folded && n.stated != n.actual;
    if (it.hidden) continue;
    // Long op names are squeezed to leave room for the "+N const" tag.
    const size_t room = it.consts > 0 ? 14 : 19;
    const std::string op_fit = n.op_type.size() <= room
                                   ? ""
                                   : " textLength=\"" + Num(it.consts > 0 ? 100 : 150) +
                                         "\" lengthAdjust=\"spacingAndGlyphs\"";
    // A red mark on nodes that preferred backends declined (the reason is in the details).
    const std::string fell = n.reason.empty()
                                 ? ""
                                 : "<circle cx=\"" + Num(kNodeW) +
                                       "\" cy=\"0\" r=\"7\" fill=\"#c62828\"/>"
                                       "<text class=\"fb\" x=\"" +
                                       Num(kNodeW) + "\" y=\"4\" text-anchor=\"middle\">!</text>";
    const std::string consts = it.consts == 0 ? ""
                                              : "<text class=\"u\" x=\"" + Num(kNodeW - 6) +
                                                    "\" y=\"14\" text-anchor=\"end\">+" +
                                                    std::to_string(it.consts) + " const</text>";
    svg += "<g class=\"n" + std::string(n.folded ? " fold" : "") + "\" id=\"n" + std::to_string(i) +
           "\" data-i=\"" + std::to_string(i) + "\" transform=\"translate(" + Num(it.x) + "," +
           Num(it.y) + ")\"><rect class=\"bx\" width=\"" + Num(kNodeW) + "\" height=\"" +
           Num(kNodeH) + "\" rx=\"6\" fill=\"" + light + "\" stroke=\"" + strong + "\"" +
           (n.folded ? " stroke-dasharray=\"4 3\"" : "") +
           " stroke-width=\"1.4\"/><rect x=\"0\" "
           "y=\"0\" width=\"6\" height=\"" +
           Num(kNodeH) + "\" rx=\"3\" fill=\"" + strong + "\"/>" +
           "<text class=\"op\" x=\"12\" y=\"16\"" + op_fit + ">" + Esc(Trunc(n.op_type, 26)) +
           "</text><text class=\"nm\" x=\"12\" y=\"30\">" + Esc(Trunc(n.name, 28)) +
           "</text><text class=\"pr" + (raised ? " raised" : "") + "\" x=\"12\" y=\"43\">" +
           Esc(Trunc(line3, 30)) + "</text>" + consts + fell + "</g>\n";
  }
  for (size_t i = nn; i < items.size(); ++i) {
    const Item& it = items[i];
    const bool in = it.input >= 0;
    const PlanValueInfo& v = in ? r.inputs[it.input] : r.outputs[it.output];
    svg += "<g class=\"pill\" data-i=\"" + std::to_string(i) + "\"><rect x=\"" + Num(it.x) +
           "\" y=\"" + Num(it.y) + "\" width=\"" + Num(kNodeW) + "\" height=\"" + Num(kPillH) +
           "\" rx=\"13\" fill=\"#eceff1\" stroke=\"#546e7a\" stroke-width=\"1.4\"/><text x=\"" +
           Num(it.x + kNodeW / 2) + "\" y=\"" + Num(it.y + 17) + "\" text-anchor=\"middle\">" +
           Esc(Trunc((in ? "in: " : "out: ") + v.name + " " + v.type, 30)) + "<title>" +
           Esc(v.name + " " + v.type) + "</title></text></g>\n";
  }
  svg += "</g></svg>\n<svg id=\"mini\" viewBox=\"0 0 " + Num(gw) + " " + Num(gh) +
         "\" preserveAspectRatio=\"none\"><use href=\"#gc\"/><rect id=\"mview\" x=\"0\" "
         "y=\"0\" width=\"10\" height=\"10\" vector-effect=\"non-scaling-stroke\"/></svg>";

  std::string layout = "{\"w\":" + Num(gw) + ",\"h\":" + Num(gh) + ",\"nw\":" + Num(kNodeW) +
                       ",\"nh\":" + Num(kNodeH) + ",\"pos\":[";
  for (size_t i = 0; i < nn; ++i) {
    layout += (i ? ",[" : "[") + Num(items[i].x) + "," + Num(items[i].y) + "]";
  }
  layout += "]}";

  std::string legend;
  for (const auto& [name, count] : r.NodesPerBackend()) {
    std::string unit;
    for (const auto& b : r.backends) {
      if (b.first == name) unit = b.second;
    }
    legend += "<span><span class=\"sw\" style=\"background:" + BackendColor(r, name, true) +
              ";border-color:" + BackendColor(r, name, false) + "\"></span>" + Esc(name) + " (" +
              Esc(unit) + ") \xC2\xB7 " + std::to_string(count) + " nodes</span>";
  }
  legend +=
      "<span><span class=\"sw\" style=\"background:#f1f1f1;border:2px dashed #9e9e9e\">"
      "</span>folded at plan time \xC2\xB7 " +
      std::to_string(r.folded_count()) + "</span>";
  legend +=
      "<span><span class=\"band\"></span>partition (one colour band each)</span>"
      "<span><span class=\"ln\" style=\"border-top:2px dashed #c62828\"></span>crosses a "
      "partition border</span><span><span class=\"ln\" style=\"border-top:2px dotted "
      "#bdbdbd\"></span>from a folded node</span><span><span class=\"mark\">!</span>fell back "
      "(hover: why)</span><span style=\"color:#e1bee7;font-weight:"
      "700\">f16\xE2\x86\x92"
      "f32: raised</span>";

  std::string backends;
  for (const auto& [name, unit] : r.backends) {
    backends += (backends.empty() ? "" : ", ") + name + " (" + unit + ")";
  }
  auto row = [](const std::string& k, const std::string& v) {
    return "<tr><td class=\"k\">" + k + "</td><td>" + v + "</td></tr>";
  };
  std::string summary =
      "<table id=\"summary\">" + row("model", "<span class=\"mono\">" + Esc(r.model) + "</span>") +
      row("model type", Esc(r.model_type)) + row("units", Esc(r.units)) +
      row("threads", std::to_string(r.threads)) + row("backends", Esc(backends)) +
      row("nodes", std::to_string(r.nodes.size()) + " (" +
                       std::to_string(r.nodes.size() - r.folded_count()) + " placed, " +
                       std::to_string(r.folded_count()) + " folded)") +
      row("partitions", std::to_string(r.partitions.size())) +
      row("arena", Esc(FormatBytes(r.arena_bytes)) + " <span class=\"muted\">(" +
                       Esc(FormatBytes(r.unshared_bytes)) + " without reuse, " +
                       std::to_string(r.arena_buffers) + " buffers)</span>");
  summary += row("inputs", "<span class=\"mono\">" + Esc(ValueList(r.inputs)) + "</span>");
  summary += row("outputs", "<span class=\"mono\">" + Esc(ValueList(r.outputs)) + "</span>");
  for (const auto& note : r.notes) summary += row("note", Esc(note));
  summary += "</table>";

  std::map<std::string, std::string> folded_by_op;
  for (const auto& n : r.nodes) {
    if (!n.folded) continue;
    std::string& list = folded_by_op[n.op_type];
    list += (list.empty() ? "" : ", ") + n.name;
  }
  std::string folded = "<details><summary>" + std::to_string(r.folded_count()) +
                       " nodes (Constant leaves are not drawn; boxes show \"+N const\")</summary>";
  for (const auto& [op, names] : folded_by_op) {
    folded += "<div><b>" + Esc(op) + "</b>: <span class=\"mono\">" + Esc(names) + "</span></div>";
  }
  folded += "</details>";
  std::string parts =
      "<table id=\"parts\"><thead><tr><th>#</th><th>backend</th><th class=\"num\">nodes</th>"
      "<th class=\"num\">est \xC2\xB5s</th><th class=\"num\">in/out</th><th class=\"num\">"
      "weights</th><th class=\"num\">work</th></tr></thead><tbody>";
  for (const auto& p : r.partitions) {
    std::string conv;
    for (const auto& c : p.border_conversions) conv += (conv.empty() ? "" : "\n") + c;
    const std::string title = "border inputs: " + ValueList(p.inputs) +
                              "\nborder outputs: " + ValueList(p.outputs) +
                              (conv.empty() ? "" : "\nconversions:\n" + conv);
    parts += "<tr id=\"p" + std::to_string(p.index) + "\" data-p=\"" + std::to_string(p.index) +
             "\" title=\"" + Esc(title) +
             "\"><td><span class=\"sw\" style=\"width:12px;height:"
             "12px;background:" +
             kBand[p.index % 10] + "66;border-color:" + kBand[p.index % 10] + "\"></span>P" +
             std::to_string(p.index) + "</td><td>" + Esc(p.backend) + "/" + Esc(p.unit) +
             "</td><td class=\"num\">" + std::to_string(p.nodes.size()) +
             "</td><td class=\"num\">" + Num(p.cost_us) + "</td><td class=\"num\">" +
             std::to_string(p.inputs.size()) + "/" + std::to_string(p.outputs.size()) +
             (conv.empty() ? "" : " \xE2\x87\x84" + std::to_string(p.border_conversions.size())) +
             "</td><td class=\"num\">" + (p.compiled ? Esc(FormatBytes(p.weight_bytes)) : "-") +
             "</td><td class=\"num\">" + (p.compiled ? Esc(FormatBytes(p.workspace_bytes)) : "-") +
             "</td></tr>";
  }
  parts += "</tbody></table>";

  std::string page =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>kiln plan: " +
      Esc(r.model) + "</title>\n<style>" + kPageCss + "</style></head>\n<body>\n";
  page += "<header><h1>kiln plan \xE2\x80\x94 " + Esc(r.model) + "</h1><div class=\"sum\">" +
          Esc(r.SummaryLine()) + " \xC2\xB7 arena " + Esc(FormatBytes(r.arena_bytes)) + " (" +
          Esc(FormatBytes(r.unshared_bytes)) + " without reuse)</div><div class=\"legend\">" +
          legend + "</div></header>\n";
  page +=
      "<div id=\"main\"><div id=\"view\"><div class=\"tools\"><button id=\"bfit\">fit width"
      "</button><button id=\"ball\">whole graph</button><button id=\"bin\">+</button><button "
      "id=\"bout\">\xE2\x88\x92</button><input id=\"q\" placeholder=\"find node or op, Enter\" "
      "size=\"22\"><span class=\"hint\">drag: pan \xC2\xB7 wheel: scroll \xC2\xB7 ctrl+wheel: "
      "zoom \xC2\xB7 click: details</span></div>\n" +
      svg + "\n</div>\n";
  page += "<div id=\"side\"><h2>Summary</h2>" + summary +
          "<h2>Selected</h2><div id=\"details\" class=\"muted\">Click a node to see its "
          "partition, backend, precision, why it fell back, and its input and output shapes."
          "</div><h2>Partitions (click: focus and details)</h2>" +
          parts + "<h2>Folded at plan time</h2>" + folded +
          "</div></div>\n<div id=\"tip\"></div>\n";
  page += "<script id=\"plan-data\" type=\"application/json\">" + ScriptSafe(RenderPlanJson(r)) +
          "</script>\n<script id=\"plan-layout\" type=\"application/json\">" + layout +
          "</script>\n<script>" + kPageJs + "</script>\n</body></html>\n";
  return page;
}

}  // namespace kiln::cli
