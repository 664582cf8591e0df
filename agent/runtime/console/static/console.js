// The workflow page's DAG: Cytoscape.js with the dagre layout. Each step is a node
// inside its domain (a compound node); the page's event stream sends the graph again
// at each change and this redraws only what changed.
(function () {
  "use strict";
  cytoscape.use(cytoscapeDagre);

  const STATE_COLOURS = {
    PENDING: "#9aa0a6", WAITING: "#c7a500", RUNNING: "#1a73e8", SUCCEEDED: "#188038",
    FAILED: "#d93025", SKIPPED: "#80868b", CANCELLED: "#5f6368",
    COMPENSATED: "#8430ce", COMPENSATION_FAILED: "#a50e0e",
  };
  const UNPLACED = "(not placed)";

  function domainId(domain) { return "domain:" + (domain || UNPLACED); }
  function stepId(step) { return "step:" + step; }
  // An instance of a fan-out step also says its wave.
  function stepLabel(s) {
    return s.id + "\n" + s.capability + (s.wave ? " · wave " + s.wave : "") + "\n" + s.state;
  }

  function elements(graph) {
    const out = [];
    const domains = new Set(graph.steps.map((s) => s.domain));
    for (const d of domains) {
      out.push({ group: "nodes", data: { id: domainId(d), label: d || UNPLACED, kind: "domain" } });
    }
    for (const s of graph.steps) {
      out.push({ group: "nodes", data: {
        id: stepId(s.id), parent: domainId(s.domain), label: stepLabel(s), kind: "step",
        step: s.id, domain: s.domain, state: s.state, colour: STATE_COLOURS[s.state] || "#999",
      } });
    }
    for (const [from, to] of graph.edges) {
      out.push({ group: "edges", data: { id: "edge:" + from + "->" + to,
        source: stepId(from), target: stepId(to) } });
    }
    return out;
  }

  function placement(graph) {
    return JSON.stringify(graph.steps.map((s) => [s.id, s.domain]).sort());
  }

  function draw(container, graph) {
    const cy = cytoscape({
      container: container,
      elements: elements(graph),
      autoungrabify: true,
      style: [
        { selector: "node[kind = 'domain']", style: {
          "label": "data(label)", "text-valign": "top", "text-halign": "center",
          "font-size": 13, "font-weight": "bold", "background-color": "#f1f3f4",
          "border-color": "#5f6368", "border-width": 1, "padding": "14px", "shape": "round-rectangle",
        } },
        { selector: "node[kind = 'step']", style: {
          "label": "data(label)", "text-wrap": "wrap", "text-valign": "center",
          "font-size": 11, "color": "#fff", "background-color": "data(colour)",
          "shape": "round-rectangle", "width": 130, "height": 54,
        } },
        { selector: "edge", style: {
          "curve-style": "bezier", "target-arrow-shape": "triangle", "width": 2,
          "line-color": "#5f6368", "target-arrow-color": "#5f6368",
        } },
      ],
      layout: { name: "dagre", rankDir: "LR", nodeSep: 30, rankSep: 70, padding: 20 },
    });
    cy.fedorchPlacement = placement(graph);
    return cy;
  }

  function update(cy, graph) {
    if (placement(graph) !== cy.fedorchPlacement) {  // placed or moved: lay out anew
      cy.elements().remove();
      cy.add(elements(graph));
      cy.layout({ name: "dagre", rankDir: "LR", nodeSep: 30, rankSep: 70, padding: 20 }).run();
      cy.fedorchPlacement = placement(graph);
      return;
    }
    for (const s of graph.steps) {
      const node = cy.getElementById(stepId(s.id));
      node.data({ state: s.state, label: stepLabel(s), colour: STATE_COLOURS[s.state] || "#999" });
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    const container = document.getElementById("dag");
    const data = document.getElementById("graph-data");
    if (!container || !data) return;
    const cy = draw(container, JSON.parse(data.textContent));
    window.fedorchGraph = cy;  // for operators' own scripting, and the browser tests
    const feed = document.getElementById("graph-feed");
    feed.addEventListener("htmx:sseBeforeMessage", function (event) {
      event.preventDefault();  // the graph is drawn here, not swapped in as HTML
      update(cy, JSON.parse(event.detail.data));
    });
  });
})();
