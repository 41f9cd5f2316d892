// The kinds deploy/k8s may use, by apiVersion/kind: test/support/k8s-schema.ts reads
// this type through the TypeScript checker to find fields the schemas do not know.
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IHorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import type { IJob } from "kubernetes-models/batch/v1/Job";
import type { IPodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import type { IConfigMap } from "kubernetes-models/v1/ConfigMap";
import type { ISecret } from "kubernetes-models/v1/Secret";
import type { IService } from "kubernetes-models/v1/Service";
import type { IScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import type { ITriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication";
import type { IPrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";

export type K8sKinds = {
  "apps/v1/Deployment": IDeployment;
  "autoscaling/v2/HorizontalPodAutoscaler": IHorizontalPodAutoscaler;
  "batch/v1/Job": IJob;
  "policy/v1/PodDisruptionBudget": IPodDisruptionBudget;
  "v1/ConfigMap": IConfigMap;
  "v1/Secret": ISecret;
  "v1/Service": IService;
  "keda.sh/v1alpha1/ScaledObject": IScaledObject;
  "keda.sh/v1alpha1/TriggerAuthentication": ITriggerAuthentication;
  "monitoring.coreos.com/v1/PrometheusRule": IPrometheusRule;
};
