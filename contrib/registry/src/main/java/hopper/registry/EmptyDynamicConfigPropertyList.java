/*
 * EmptyDynamicConfigPropertyList - the one bean that Apicurio's
 * apicurio-common-app-components-config-index extension would produce.
 *
 * That Quarkus extension's -deployment artifact is not on Maven Central, so
 * pom.xml excludes the extension. At build time it collected the
 * properties marked @Dynamic (editable at run time through the admin API)
 * into a DynamicConfigPropertyList bean that DynamicConfigPropertyIndexImpl
 * injects. An empty list makes Apicurio start with no property editable at
 * run time; the local stack configures the registry by system properties
 * only, so nothing is lost.
 */
package hopper.registry;

import io.apicurio.common.apps.config.DynamicConfigPropertyList;
import java.util.ArrayList;
import javax.enterprise.context.Dependent;
import javax.enterprise.inject.Produces;
import javax.inject.Singleton;

@Dependent
public class EmptyDynamicConfigPropertyList {
    @Produces
    @Singleton
    DynamicConfigPropertyList dynamicConfigPropertyList() {
        return new DynamicConfigPropertyList(new ArrayList<>());
    }
}
