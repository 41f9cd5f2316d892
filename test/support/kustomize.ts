// A small `kustomize build` for the features deploy/k8s uses.
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parseAllDocuments, parse as parseYaml } from "yaml";

/**
 * A small stand-in for `kustomize build` (no kubectl or kustomize binary here), for the
 * few features deploy/k8s uses: `resources` (files and directories holding a
 * kustomization), `namespace`, `images` and JSON 6902 `patches` with a kind/name
 * target. Any other kustomization field, a patch that is not a JSON 6902 list, or a
 * target that matches nothing throws, so the manifests cannot drift into features this
 * renderer would silently ignore.
 */

export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
};

type Image = { name: string; newName?: string; newTag?: string; digest?: string };
type Patch = { target: { kind?: string; name?: string; group?: string; version?: string }; patch?: string; path?: string };
type Kustomization = {
  apiVersion?: string;
  kind?: string;
  resources?: string[];
  namespace?: string;
  images?: Image[];
  patches?: Patch[];
};

const SUPPORTED = new Set(["apiVersion", "kind", "resources", "namespace", "images", "patches"]);
const CLUSTER_SCOPED = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume", "StorageClass", "PriorityClass"]);

export function renderKustomization(dir: string): K8sObject[] {
  const file = join(dir, "kustomization.yaml");
  const k = parseYaml(readFileSync(file, "utf8")) as Kustomization;
  if (k.kind !== "Kustomization" || k.apiVersion !== "kustomize.config.k8s.io/v1beta1") {
    throw new Error(`${file}: not a kustomize.config.k8s.io/v1beta1 Kustomization`);
  }
  const unsupported = Object.keys(k).filter((key) => !SUPPORTED.has(key));
  if (unsupported.length) throw new Error(`${file}: fields this renderer does not implement: ${unsupported.join(", ")}`);

  let objects: K8sObject[] = [];
  for (const entry of k.resources ?? []) {
    const path = resolve(dir, entry);
    if (!existsSync(path)) throw new Error(`${file}: resource ${entry} does not exist`);
    objects.push(...(statSync(path).isDirectory() ? renderKustomization(path) : readObjects(path)));
  }
  const ids = objects.map(idOf);
  const dup = ids.find((id, i) => ids.indexOf(id) !== i);
  if (dup) throw new Error(`${file}: ${dup} is defined twice`);

  for (const patch of k.patches ?? []) objects = applyPatch(objects, patch, dir);
  for (const image of k.images ?? []) setImage(objects, image, file);
  if (k.namespace) {
    for (const o of objects) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
  }
  return objects;
}

export function readObjects(path: string): K8sObject[] {
  return parseAllDocuments(readFileSync(path, "utf8")).flatMap((doc) => {
    if (doc.errors.length) throw new Error(`${path}: ${doc.errors.map((e) => e.message).join("; ")}`);
    const value = doc.toJS() as K8sObject | null;
    if (value === null) return [];
    if (!value.kind || !value.apiVersion || !value.metadata?.name) throw new Error(`${path}: an object without apiVersion, kind or metadata.name`);
    return [value];
  });
}

const idOf = (o: K8sObject) => `${o.kind}/${o.metadata.name}`;

function applyPatch(objects: K8sObject[], p: Patch, dir: string): K8sObject[] {
  const text = p.patch ?? (p.path ? readFileSync(resolve(dir, p.path), "utf8") : undefined);
  if (!text || !p.target) throw new Error("a patch needs a target and an inline patch or a path");
  const ops = parseYaml(text) as JsonPatchOp[];
  if (!Array.isArray(ops)) throw new Error(`only JSON 6902 patches (a list of operations) are implemented: ${text.slice(0, 60)}`);
  const matches = objects.filter(
    (o) =>
      (!p.target.kind || o.kind === p.target.kind) &&
      (!p.target.name || o.metadata.name === p.target.name) &&
      (!p.target.group || o.apiVersion.split("/")[0] === p.target.group) &&
      (!p.target.version || o.apiVersion.split("/").at(-1) === p.target.version),
  );
  if (!matches.length) throw new Error(`patch target ${JSON.stringify(p.target)} matches no resource`);
  return objects.map((o) => (matches.includes(o) ? applyJsonPatch(o, ops) : o));
}

type JsonPatchOp = { op: "add" | "replace" | "remove"; path: string; value?: unknown };

/** RFC 6902 add, replace and remove; an operation on a missing location throws. */
export function applyJsonPatch<T>(doc: T, ops: JsonPatchOp[]): T {
  const out = structuredClone(doc) as unknown;
  for (const { op, path, value } of ops) {
    const tokens = path.split("/").slice(1).map((t) => t.replaceAll("~1", "/").replaceAll("~0", "~"));
    const last = tokens.pop();
    if (last === undefined) throw new Error(`JSON patch ${op} of the whole document is not supported`);
    let parent: any = out;
    for (const t of tokens) {
      parent = Array.isArray(parent) ? parent[Number(t)] : parent?.[t];
      if (parent === undefined || parent === null || typeof parent !== "object") throw new Error(`JSON patch ${op} ${path}: no such location`);
    }
    if (Array.isArray(parent)) {
      const index = last === "-" ? parent.length : Number(last);
      if (!Number.isInteger(index) || index < 0 || index > parent.length || (op !== "add" && index >= parent.length)) {
        throw new Error(`JSON patch ${op} ${path}: index out of range`);
      }
      if (op === "add") parent.splice(index, 0, structuredClone(value));
      else if (op === "replace") parent[index] = structuredClone(value);
      else parent.splice(index, 1);
    } else {
      if (op !== "add" && !(last in parent)) throw new Error(`JSON patch ${op} ${path}: no such member`);
      if (op === "remove") delete parent[last];
      else parent[last] = structuredClone(value);
    }
  }
  return out as T;
}

/** kustomize's images transformer: every containers[] and initContainers[] image named `name`. */
function setImage(objects: K8sObject[], image: Image, file: string): void {
  let hits = 0;
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(visit);
    if (!node || typeof node !== "object") return;
    for (const [key, child] of Object.entries(node)) {
      if ((key === "containers" || key === "initContainers") && Array.isArray(child)) {
        for (const c of child as { image?: string }[]) {
          if (!c.image) continue;
          const ref = parseImage(c.image);
          if (ref.name !== image.name) continue;
          const name = image.newName ?? ref.name;
          c.image = image.digest ? `${name}@${image.digest}` : `${name}${image.newTag ? `:${image.newTag}` : ref.tag ? `:${ref.tag}` : ""}`;
          hits++;
        }
      } else visit(child);
    }
  };
  objects.forEach(visit);
  if (!hits) throw new Error(`${file}: image ${image.name} is used by no container`);
}

function parseImage(ref: string): { name: string; tag?: string; digest?: string } {
  const [nameAndTag, digest] = ref.split("@") as [string, string | undefined];
  const slash = nameAndTag.lastIndexOf("/");
  const colon = nameAndTag.lastIndexOf(":");
  return colon > slash ? { name: nameAndTag.slice(0, colon), tag: nameAndTag.slice(colon + 1), digest } : { name: nameAndTag, digest };
}

export const repoPath = (...parts: string[]) => join(dirname(dirname(import.meta.dirname)), ...parts);
