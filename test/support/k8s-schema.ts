// Offline validation of Kubernetes objects against the schemas of the API and its CRDs.
import ts from "typescript";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { Job } from "kubernetes-models/batch/v1/Job";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import type { K8sObject } from "./kustomize.js";

/**
 * Offline validation of Kubernetes objects, in two parts:
 *
 * 1. The JSON Schemas of the Kubernetes OpenAPI (kubernetes-models 4.5.1, which has the
 *    1.33 API groups), of KEDA's CRDs (@kubernetes-models/keda 0.4.2) and of the
 *    Prometheus Operator's (@kubernetes-models/prometheus-operator 4.4.4), compiled to
 *    Ajv validators by those packages: types, required fields, enums, formats.
 * 2. Unknown fields, which those schemas allow (the OpenAPI sets no
 *    additionalProperties) but the API server rejects under kubectl's default strict
 *    field validation: every key is looked up in the same packages' TypeScript
 *    declarations, generated from the same schemas, through the type checker.
 */

type ModelClass = { new (data: any): { validate(): void } };

const MODELS: Record<string, ModelClass> = {
  "apps/v1/Deployment": Deployment,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler,
  "batch/v1/Job": Job,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "v1/ConfigMap": ConfigMap,
  "v1/Secret": Secret,
  "v1/Service": Service,
  "keda.sh/v1alpha1/ScaledObject": ScaledObject,
  "keda.sh/v1alpha1/TriggerAuthentication": TriggerAuthentication,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule,
};

const keyOf = (o: { apiVersion: string; kind: string }) => `${o.apiVersion}/${o.kind}`;

export type Validator = (o: K8sObject) => string[];

/** Builds the checker once (a TypeScript program over the declarations: about 2 s). */
export function createValidator(): Validator {
  const kindsFile = new URL("./k8s-kinds.ts", import.meta.url).pathname;
  const program = ts.createProgram([kindsFile], {
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(kindsFile);
  const moduleSymbol = source && checker.getSymbolAtLocation(source);
  const kindsSymbol = moduleSymbol && checker.getExportsOfModule(moduleSymbol).find((s) => s.name === "K8sKinds");
  if (!kindsSymbol) throw new Error(`${kindsFile}: no exported K8sKinds type`);
  const kinds = checker.getDeclaredTypeOfSymbol(kindsSymbol);

  const unknownFields = (value: unknown, type: ts.Type, path: string, out: string[]): void => {
    let t = checker.getNonNullableType(type);
    if (t.isUnion()) {
      const objects = t.types.filter((m) => m.flags & ts.TypeFlags.Object);
      if (!objects.length) return;
      if (objects.length > 1) return void out.push(`${path}: ambiguous type in the declarations`);
      t = objects[0]!;
    }
    if (Array.isArray(value)) {
      const element = checker.isArrayType(t) ? checker.getTypeArguments(t as ts.TypeReference)[0] : undefined;
      if (!element) return void out.push(`${path}: a list where the schema has none`);
      value.forEach((v, i) => unknownFields(v, element, `${path}/${i}`, out));
      return;
    }
    if (value === null || typeof value !== "object") return;
    const index = checker.getIndexInfoOfType(t, ts.IndexKind.String);
    for (const [key, child] of Object.entries(value)) {
      const prop = checker.getPropertyOfType(t, key);
      if (prop) unknownFields(child, checker.getTypeOfSymbol(prop), `${path}/${key}`, out);
      else if (index) unknownFields(child, index.type, `${path}/${key}`, out);
      else out.push(`${path}/${key}: unknown field`);
    }
  };

  return (o) => {
    const key = keyOf(o);
    const Model = MODELS[key];
    const prop = checker.getPropertyOfType(kinds, key);
    if (!Model || !prop) return [`${key}: no schema for this kind (add it to test/support/k8s-schema.ts and k8s-kinds.ts)`];
    const errors: string[] = [];
    try {
      new Model(structuredClone(o)).validate();
    } catch (err) {
      const list = (err as { errors?: { instancePath: string; message?: string }[] }).errors;
      if (!list) throw err;
      errors.push(...list.map((e) => `${e.instancePath || "/"}: ${e.message}`));
    }
    unknownFields(o, checker.getTypeOfSymbol(prop), "", errors);
    return errors.map((e) => `${o.kind}/${o.metadata?.name}${e}`);
  };
}
